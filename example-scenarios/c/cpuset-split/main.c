/*
 * `cpuset-split`: two cgroups on disjoint halves of the CPUs.
 *
 * The C twin of example-scenarios/rust/cpuset-split: its op stream is the
 * same, byte for byte. `left` and `right` live on the Backdrop with cpusets
 * `disjoint(0, 2)` and `disjoint(1, 2)` and two spinning workers each.
 * Step 0 lets them run; step 1 captures each cgroup's procs. The check wants
 * both steps passed, two pids per cgroup, progress in both and, where the
 * host reports per-CPU placement, no CPU shared by the two cgroups' workers.
 */
#include "schedbox.h"

static const char *const HALVES[2] = {"left", "right"};

static sb_info_t describe(void) {
    sb_info_t info = sb_info("cpuset-split", "two cgroups with two spinners each on disjoint halves of the CPUs");
    sb_topology(&info, 1, 2, 2, 1);
    sb_needs(&info, SB_CGROUP_V2);
    sb_duration_ms(&info, 3000);
    return info;
}

static bool run(sb_string_t *err) {
    sb_backdrop_t backdrop = SB_BACKDROP(SB_CGROUPS(
        SB_CGROUP("left", .cpuset = SB_SOME(sb_disjoint(0, 2)), .workers = SB_WORKERS(sb_spinners(2))),
        SB_CGROUP("right", .cpuset = SB_SOME(sb_disjoint(1, 2)), .workers = SB_WORKERS(sb_spinners(2)))));
    return SB_EMIT(err, backdrop,
                   /* Let the workers run. */
                   SB_STEP(sb_frac(0.5)),
                   /* Record who is where, keep running. */
                   SB_STEP(sb_frac(0.5),
                           sb_capture_cgroup_procs("left-procs", "left"),
                           sb_capture_cgroup_procs("right-procs", "right")));
}

static void check(const sb_results_t *r, sb_checker_t *c) {
    sb_expect_steps_passed(c, r);
    sb_expect_eq(c, "step results", r->steps.len, 2);
    for (size_t h = 0; h < 2; h++) {
        char tag[32], what[32];
        snprintf(tag, sizeof tag, "%s-procs", HALVES[h]);
        size_t n;
        if (sb_procs(r, tag, &n)) {
            snprintf(what, sizeof what, "pids in %s", HALVES[h]);
            sb_expect_eq(c, what, n, 2);
        } else {
            sb_fail(c, "no capture tagged `%s`", tag);
        }
    }
    const sb_worker_metrics_t *left = sb_worker_metrics(r, "left"), *right = sb_worker_metrics(r, "right");
    if (!left || !right) {
        sb_fail(c, "worker metrics of `left` or `right` missing");
        return;
    }
    const sb_worker_metrics_t *both[2] = {left, right};
    for (size_t h = 0; h < 2; h++)
        sb_expect(c, both[h]->iterations > 0, "workers of `%.*s` made no progress", (int)both[h]->cgroup.len,
                  (const char *)both[h]->cgroup.ptr);
    /* Placement samples are required (no isolation check passes without
     * them); the halves must not have shared a CPU. Listed in ascending
     * order, like the Rust set. */
    sb_expect(c, left->cpus.len > 0, "no placement samples for the workers of `left`");
    sb_expect(c, right->cpus.len > 0, "no placement samples for the workers of `right`");
    if (left->cpus.len && right->cpus.len) {
        char shared[256] = "[";
        size_t used = 1, count = 0;
        uint32_t max = 0;
        for (size_t i = 0; i < left->cpus.len; i++)
            if (left->cpus.ptr[i].cpu > max) max = left->cpus.ptr[i].cpu;
        for (uint32_t cpu = 0; cpu <= max; cpu++)
            if (sb_cpu_seen(left, cpu) && sb_cpu_seen(right, cpu) && used < sizeof shared - 16)
                used += (size_t)snprintf(shared + used, sizeof shared - used, "%s%u", count++ ? ", " : "", cpu);
        snprintf(shared + used, sizeof shared - used, "]");
        sb_expect(c, count == 0, "left and right workers both ran on CPUs %s", shared);
    }
}

SB_EXPORT_SCENARIO(describe, run, check)
