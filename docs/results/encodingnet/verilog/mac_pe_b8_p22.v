`default_nettype none
module mac_pe (input [7:0] a, input [7:0] w, input signed [21:0] p,
  output signed [21:0] y);
  wire signed [15:0] m = $signed(a) * $signed(w);
  assign y = p + m;
endmodule
