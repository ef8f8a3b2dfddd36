/*
 * `freeze-resume`: freeze a cgroup's workers, capture them, thaw them.
 *
 * The C twin of example-scenarios/rust/freeze-resume. The Backdrop cgroup
 * `workers` has two spinners. Step 0 lets them run, step 1 freezes the cgroup
 * and captures its procs, step 2 thaws it. The check wants all three steps
 * passed and the frozen capture to still list both workers (freezing stops
 * tasks, it does not remove them).
 */
#include "schedbox.h"

#define CGROUP "workers"

static sb_info_t describe(void) {
    sb_info_t info = sb_info("freeze-resume", "freeze a cgroup of workers, capture its procs, thaw it");
    sb_topology(&info, 1, 1, 2, 1);
    sb_needs(&info, SB_CGROUP_V2);
    sb_duration_ms(&info, 3000);
    return info;
}

static bool run(sb_string_t *err) {
    sb_backdrop_t backdrop = SB_BACKDROP(SB_CGROUPS(SB_CGROUP(CGROUP, .workers = SB_WORKERS(sb_spinners(2)))));
    return SB_EMIT(err, backdrop,
                   SB_STEP(sb_frac(0.4)),
                   SB_STEP(sb_frac(0.2), sb_freeze_cgroup(CGROUP), sb_capture_cgroup_procs("frozen-procs", CGROUP)),
                   SB_STEP(sb_frac(0.4), sb_unfreeze_cgroup(CGROUP)));
}

static void check(const sb_results_t *r, sb_checker_t *c) {
    sb_expect_steps_passed(c, r);
    sb_expect_eq(c, "step results", r->steps.len, 3);
    size_t n;
    if (sb_procs(r, "frozen-procs", &n))
        sb_expect_eq(c, "pids in the frozen cgroup", n, 2);
    else
        sb_fail(c, "no capture tagged `frozen-procs`");
    const sb_worker_metrics_t *m = sb_worker_metrics(r, CGROUP);
    if (m) sb_expect(c, m->iterations > 0, "the workers made no progress");
}

SB_EXPORT_SCENARIO(describe, run, check)
