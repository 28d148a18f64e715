"""The ``frugalnn hw`` commands end to end (small settings)."""

import json

import numpy as np

from frugalnn.cli import main


def test_characterize_mac_writes_json_and_plots(tmp_path, capsys):
    acts = tmp_path / "acts.npy"
    np.save(acts, np.abs(np.random.default_rng(0).normal(size=500)).astype(np.float32))
    out = tmp_path / "char"
    code = main(
        [
            "hw",
            "characterize-mac",
            "--bits",
            "4",
            "--psum-bits",
            "10",
            "--unsigned-activations",
            "--activations",
            str(acts),
            "--transitions",
            "256",
            "--timed-transitions",
            "128",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    record = json.loads((out / "mac_characterisation.json").read_text())
    assert len(record["results"]["energy_pj"]) == 16 and record["data"]["sha256"]
    assert record["config"]["mac"]["activation_signed"] is False
    for name in ("energy_per_weight.png", "energy_heatmap.png", "delay_per_weight.png", "delay_heatmap.png"):
        assert (out / name).stat().st_size > 1000
    # an existing folder is not overwritten without --overwrite
    assert main(["hw", "characterize-mac", "--bits", "4", "--transitions", "64", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_synth_prints_area_cells_and_path(tmp_path, capsys):
    src = tmp_path / "add.v"
    src.write_text("module add4(input [3:0] a, input [3:0] b, output [4:0] s); assign s = a + b; endmodule\n")
    assert main(["hw", "synth", str(src), "--json", str(tmp_path / "o.json")]) == 0
    text = capsys.readouterr().out
    assert "add4: area" in text and "critical path" in text
    figures = json.loads((tmp_path / "o.json").read_text())
    assert figures["critical_path_ns_opensta"] > 0 and figures["cells"] > 0


def test_bad_inputs_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input a, output y); assign y = a +; endmodule\n")
    assert main(["hw", "synth", str(bad)]) == 2
    assert "yosys rejected" in capsys.readouterr().err
    junk = tmp_path / "junk.npy"
    junk.write_text("not numpy")
    assert (
        main(
            [
                "hw",
                "characterize-mac",
                "--bits",
                "4",
                "--activations",
                str(junk),
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "npy" in capsys.readouterr().err
