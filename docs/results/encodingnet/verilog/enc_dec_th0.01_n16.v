`default_nettype none
module enc_dec (
  input [4:0] c0,
  input [4:0] c1,
  input [4:0] c2,
  input [4:0] c3,
  input [4:0] c4,
  input [4:0] c5,
  input [4:0] c6,
  input [4:0] c7,
  input [4:0] c8,
  input [4:0] c9,
  input [4:0] c10,
  input [4:0] c11,
  input [4:0] c12,
  input [4:0] c13,
  input [4:0] c14,
  input [4:0] c15,
  input [4:0] c16,
  input [4:0] c17,
  input [4:0] c18,
  input [4:0] c19,
  input [4:0] c20,
  input [4:0] c21,
  input [4:0] c22,
  input [4:0] c23,
  input [4:0] c24,
  input [4:0] c25,
  input [4:0] c26,
  input [4:0] c27,
  input [4:0] c28,
  input [4:0] c29,
  input [4:0] c30,
  input [4:0] c31,
  input [4:0] c32,
  input [4:0] c33,
  input [4:0] c34,
  input [4:0] c35,
  input [4:0] c36,
  input [4:0] c37,
  input [4:0] c38,
  input [4:0] c39,
  input [4:0] c40,
  input [4:0] c41,
  input [4:0] c42,
  input [4:0] c43,
  input [4:0] c44,
  input [4:0] c45,
  input [4:0] c46,
  input [4:0] c47,
  input signed [21:0] p,
  output signed [21:0] y
);
  wire signed [21:0] t0 = $signed({17'd0, c0}) * 22'sd32;
  wire signed [21:0] t1 = $signed({17'd0, c1}) * 22'sd64;
  wire signed [21:0] t2 = $signed({17'd0, c2}) * 22'sd26;
  wire signed [21:0] t3 = $signed({17'd0, c3}) * 22'sd35;
  wire signed [21:0] t4 = $signed({17'd0, c4}) * 22'sd64;
  wire signed [21:0] t5 = $signed({17'd0, c5}) * 22'sd128;
  wire signed [21:0] t6 = $signed({17'd0, c6}) * 22'sd36;
  wire signed [21:0] t7 = $signed({17'd0, c7}) * 22'sd70;
  wire signed [21:0] t8 = $signed({17'd0, c8}) * 22'sd130;
  wire signed [21:0] t9 = $signed({17'd0, c9}) * 22'sd251;
  wire signed [21:0] t10 = $signed({17'd0, c10}) * 22'sd30;
  wire signed [21:0] t11 = $signed({17'd0, c11}) * 22'sd62;
  wire signed [21:0] t12 = $signed({17'd0, c12}) * 22'sd131;
  wire signed [21:0] t13 = $signed({17'd0, c13}) * 22'sd256;
  wire signed [21:0] t14 = $signed({17'd0, c14}) * 22'sd512;
  wire signed [21:0] t15 = $signed({17'd0, c15}) * 22'sd32;
  wire signed [21:0] t16 = $signed({17'd0, c16}) * 22'sd64;
  wire signed [21:0] t17 = $signed({17'd0, c17}) * 22'sd128;
  wire signed [21:0] t18 = $signed({17'd0, c18}) * 22'sd259;
  wire signed [21:0] t19 = $signed({17'd0, c19}) * 22'sd512;
  wire signed [21:0] t20 = $signed({17'd0, c20}) * 22'sd1024;
  wire signed [21:0] t21 = $signed({17'd0, c21}) * 22'sd32;
  wire signed [21:0] t22 = $signed({17'd0, c22}) * 22'sd67;
  wire signed [21:0] t23 = $signed({17'd0, c23}) * 22'sd128;
  wire signed [21:0] t24 = $signed({17'd0, c24}) * 22'sd256;
  wire signed [21:0] t25 = $signed({17'd0, c25}) * 22'sd515;
  wire signed [21:0] t26 = $signed({17'd0, c26}) * 22'sd1024;
  wire signed [21:0] t27 = $signed({17'd0, c27}) * 22'sd2048;
  wire signed [21:0] t28 = $signed({17'd0, c28}) * 22'sd29;
  wire signed [21:0] t29 = $signed({17'd0, c29}) * 22'sd64;
  wire signed [21:0] t30 = $signed({17'd0, c30}) * 22'sd126;
  wire signed [21:0] t31 = $signed({17'd0, c31}) * 22'sd264;
  wire signed [21:0] t32 = $signed({17'd0, c32}) * 22'sd510;
  wire signed [21:0] t33 = $signed({17'd0, c33}) * 22'sd1027;
  wire signed [21:0] t34 = $signed({17'd0, c34}) * 22'sd2048;
  wire signed [21:0] t35 = $signed({17'd0, c35}) * 22'sd4096;
  wire signed [21:0] t36 = $signed({17'd0, c36}) * 22'sd70;
  wire signed [21:0] t37 = $signed({17'd0, c37}) * 22'sd256;
  wire signed [21:0] t38 = $signed({17'd0, c38}) * 22'sd512;
  wire signed [21:0] t39 = $signed({17'd0, c39}) * 22'sd1016;
  wire signed [21:0] t40 = $signed({17'd0, c40}) * 22'sd2045;
  wire signed [21:0] t41 = $signed({17'd0, c41}) * 22'sd4096;
  wire signed [21:0] t42 = $signed({17'd0, c42}) * 22'sd8192;
  wire signed [21:0] t43 = $signed({17'd0, c43}) * 22'sd16;
  wire signed [21:0] t44 = $signed({17'd0, c44}) * 22'sd58;
  wire signed [21:0] t45 = $signed({17'd0, c45}) * 22'sd19;
  wire signed [21:0] t46 = $signed({17'd0, c46}) * 22'sd13;
  wire signed [21:0] t47 = $signed({17'd0, c47}) * 22'sd19;
  wire signed [21:0] dec = 22'sd0 + t0 - t1 + t2 + t3 + t4 + t5 + t6 + t7 + t8 - t9 + t10 + t11 + t12 + t13 - t14 + t15 + t16 + t17 + t18 + t19 - t20 - t21 + t22 + t23 + t24 + t25 + t26 - t27 + t28 + t29 - t30 + t31 + t32 + t33 + t34 - t35 - t36 - t37 - t38 - t39 - t40 - t41 + t42 + t43 + t44 - t45 - t46 - t47;
  assign y = p + (dec <<< 1);
endmodule
