"""The optimised-HLO pass counter behind the optimizers benchmark's kernels/leaf column."""

from benchmarks.optimizers import entry_passes

# XLA:CPU's optimised ENTRY for jaxfund's donated Adam step on one f32[1024,1024] leaf (jaxlib
# 0.10.2): three loops over the leaf (exp_avg, exp_avg_sq, the parameter update) and scalar
# fusions for the step count and the bias corrections.
ADAM_CPU = """
HloModule jit_step

%fused_computation (param_0: s32[]) -> s32[] {
  ROOT %x = s32[] parameter(0)
}

ENTRY %main.2 (params_0_.1: f32[1024,1024], state_0__count.1: s32[], state_0__exp_avg_0_.1: f32[1024,1024], state_0__exp_avg_sq_0_.1: f32[1024,1024], state_1__count.1: s32[], grads_0_.1: f32[1024,1024]) -> (f32[1024,1024], s32[], f32[1024,1024], f32[1024,1024], s32[]) {
  %params_0_.1 = f32[1024,1024]{1,0} parameter(0), metadata={op_name="params[0]"}
  %state_0__count.1 = s32[] parameter(1), metadata={op_name="state[0].count"}
  %state_0__exp_avg_0_.1 = f32[1024,1024]{1,0} parameter(2), metadata={op_name="state[0].exp_avg[0]"}
  %state_0__exp_avg_sq_0_.1 = f32[1024,1024]{1,0} parameter(3), metadata={op_name="state[0].exp_avg_sq[0]"}
  %state_1__count.1 = s32[] parameter(4), metadata={op_name="state[1].count"}
  %grads_0_.1 = f32[1024,1024]{1,0} parameter(5), metadata={op_name="grads[0]"}
  %copy.1 = s32[] copy(%state_0__count.1)
  %add_select_fusion = s32[] fusion(%state_1__count.1), kind=kLoop, calls=%fused_computation
  %multiply_add_fusion.2 = f32[1024,1024]{1,0} fusion(%state_0__exp_avg_0_.1, %grads_0_.1), kind=kLoop, calls=%fused_computation.6, backend_config={"outer_dimension_partitions":["2"]}
  %multiply_add_fusion.1 = f32[1024,1024]{1,0} fusion(%grads_0_.1, %state_0__exp_avg_sq_0_.1), kind=kLoop, calls=%fused_computation.4
  %negate_divide_fusion = f32[] fusion(%copy.1), kind=kLoop, calls=%fused_computation.5
  %compare_select_fusion = s32[] fusion(%copy.1), kind=kLoop, calls=%fused_computation.1
  %negate_rsqrt_fusion = f32[] fusion(%copy.1), kind=kLoop, calls=%fused_computation.3
  %multiply_add_fusion = f32[1024,1024]{1,0} fusion(%params_0_.1, %negate_rsqrt_fusion, %multiply_add_fusion.1, %multiply_add_fusion.2, %negate_divide_fusion), kind=kLoop, calls=%fused_computation.2
  ROOT %tuple = (f32[1024,1024]{1,0}, s32[], f32[1024,1024]{1,0}, f32[1024,1024]{1,0}, s32[]) tuple(%multiply_add_fusion, %compare_select_fusion, %multiply_add_fusion.2, %multiply_add_fusion.1, %add_select_fusion)
}
"""


def test_counts_the_passes_over_the_leaf_only():
    assert entry_passes(ADAM_CPU, 1024 * 1024) == ["fusion", "fusion", "fusion"]


def test_a_reduction_to_a_scalar_counts_and_a_multi_output_fusion_counts_once():
    text = ADAM_CPU.replace(
        "%multiply_add_fusion.1 = f32[1024,1024]{1,0} fusion(",
        "%norm = f32[] reduce(%grads_0_.1, %copy.1), dimensions={0,1}, to_apply=%add\n"
        "  %multiply_add_fusion.1 = f32[1024,1024]{1,0} fusion(")
    assert entry_passes(text, 1024 * 1024) == ["fusion", "reduce", "fusion", "fusion"]
    fused = ("ENTRY %e (p: f32[8,8], g: f32[8,8]) -> (f32[8,8], f32[8,8]) {\n"
             "  %p = f32[8,8]{1,0} parameter(0)\n  %g = f32[8,8]{1,0} parameter(1)\n"
             "  ROOT %f = (f32[8,8]{1,0}, f32[8,8]{1,0}) fusion(%p, %g), kind=kLoop, calls=%c\n}")
    assert entry_passes("\n" + fused, 64) == ["fusion"]
    assert entry_passes("\n" + fused, 65) == []
