/*
 * `kernel-reads`: read kernel memory with the guest paused.
 *
 * The C twin of example-scenarios/rust/kernel-reads. Reads `jiffies_64`
 * before and after a fixed 200 ms hold, and CPU 0's `runqueues.clock`. The
 * check wants both steps passed, jiffies to have advanced and the run-queue
 * clock to be non-zero.
 */
#include "schedbox.h"

static sb_op_t jiffies(const char *tag) {
    return sb_read_kernel_cold(tag, sb_symbol("jiffies_64"), sb_width_u64());
}

static sb_info_t describe(void) {
    sb_info_t info = sb_info("kernel-reads", "jiffies advance across a hold; CPU 0's run-queue clock is set");
    sb_topology(&info, 1, 1, 2, 1);
    sb_needs(&info, SB_BTF);
    sb_duration_ms(&info, 2000);
    return info;
}

static bool run(sb_string_t *err) {
    return SB_EMIT(err, SB_NO_BACKDROP,
                   SB_STEP(sb_fixed_ms(200), jiffies("jiffies-before")),
                   SB_STEP(sb_fixed_ms(100),
                           jiffies("jiffies-after"),
                           sb_read_kernel_cold("rq-clock-0", sb_per_cpu_field("runqueues", "clock", 0), sb_width_u64())));
}

static void check(const sb_results_t *r, sb_checker_t *c) {
    sb_expect_steps_passed(c, r);
    uint64_t before, after, clock;
    if (sb_kernel_read_u64(r, "jiffies-before", &before) && sb_kernel_read_u64(r, "jiffies-after", &after))
        sb_expect(c, after > before, "jiffies did not advance: before %llu, after %llu", (unsigned long long)before,
                  (unsigned long long)after);
    else
        sb_fail(c, "missing a u64 read tagged `jiffies-before` or `jiffies-after`");
    if (sb_kernel_read_u64(r, "rq-clock-0", &clock))
        sb_expect(c, clock != 0, "runqueues.clock of CPU 0 is zero");
    else
        sb_fail(c, "missing a u64 read tagged `rq-clock-0`");
}

SB_EXPORT_SCENARIO(describe, run, check)
