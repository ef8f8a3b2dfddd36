/*
 * `freeze-resume`: the reference's suspend/resume of a Backdrop cgroup.
 *
 * The C twin of example-scenarios/rust/freeze-resume. The Backdrop cgroup
 * `workers` has two spinners. Step 0 lets them run, step 1 freezes the cgroup
 * and captures its procs, step 2 does nothing (the freeze lasts across the step
 * boundary), step 3 thaws it. The check reads the step metrics (the guest at
 * each step's end): the workers ran in step 0, the cgroup is frozen at the end
 * of steps 1 and 2 and used no CPU in step 2, and it runs again after the
 * unfreeze. Missing data fails the check.
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
                   SB_STEP(sb_frac(0.3)),
                   SB_STEP(sb_frac(0.2), sb_freeze_cgroup(CGROUP), sb_capture_cgroup_procs("frozen-procs", CGROUP)),
                   SB_STEP(sb_frac(0.2)),
                   SB_STEP(sb_frac(0.3), sb_unfreeze_cgroup(CGROUP)));
}

static void check_steps(sb_checker_t *c, const sb_step_metrics_list_t *steps) {
    if (steps->len != 4) {
        sb_fail(c, "step metrics: %zu steps, want 4", steps->len);
        return;
    }
    const sb_cgroup_state_t *at[4];
    size_t found = 0;
    for (size_t i = 0; i < 4; i++) {
        at[i] = sb_step_cgroup(&steps->ptr[i], CGROUP);
        if (at[i])
            found++;
        else
            sb_fail(c, "step %zu: no metrics for cgroup `workers`", i);
    }
    if (found != 4) return;
    sb_expect(c, !at[0]->frozen, "step 0: `workers` is frozen before the freeze");
    sb_expect(c, at[0]->metrics.iterations > 0, "step 0: the workers made no progress");
    sb_expect(c, at[1]->frozen, "step 1: `workers` is not frozen after freeze-cgroup");
    sb_expect(c, at[2]->frozen, "step 2: `workers` was thawed before unfreeze-cgroup");
    sb_expect(c, at[2]->usage_usec == at[1]->usage_usec, "step 2: the frozen cgroup used CPU: usage_usec %llu -> %llu",
              (unsigned long long)at[1]->usage_usec, (unsigned long long)at[2]->usage_usec);
    sb_expect(c, at[2]->metrics.iterations == at[1]->metrics.iterations,
              "step 2: the frozen workers made progress: %llu -> %llu iterations",
              (unsigned long long)at[1]->metrics.iterations, (unsigned long long)at[2]->metrics.iterations);
    sb_expect(c, !at[3]->frozen, "step 3: `workers` is still frozen after unfreeze-cgroup");
    sb_expect(c, at[3]->metrics.iterations > at[2]->metrics.iterations,
              "step 3: no progress after the unfreeze: %llu -> %llu iterations",
              (unsigned long long)at[2]->metrics.iterations, (unsigned long long)at[3]->metrics.iterations);
}

static void check(const sb_results_t *r, sb_checker_t *c) {
    sb_expect_steps_passed(c, r);
    sb_expect_eq(c, "step results", r->steps.len, 4);
    size_t n;
    if (sb_procs(r, "frozen-procs", &n))
        sb_expect_eq(c, "pids in the frozen cgroup", n, 2);
    else
        sb_fail(c, "no capture tagged `frozen-procs`");
    const sb_worker_metrics_t *m = sb_worker_metrics(r, CGROUP);
    if (m)
        sb_expect(c, m->iterations > 0, "the workers made no progress");
    else
        sb_fail(c, "no worker metrics for cgroup `workers`");
    sb_step_metrics_list_t steps = sb_step_metrics();
    check_steps(c, &steps);
    sb_step_metrics_free(&steps);
}

SB_EXPORT_SCENARIO(describe, run, check)
