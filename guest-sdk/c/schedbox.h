/*
 * schedbox.h — write schedbox scenarios in C.
 *
 * A thin layer over the C bindings that `wit-bindgen c` generates for world
 * `scenario` (`scenario.h`; `cargo xtask build-scenarios` generates them into
 * `target/c-bindings/`). It mirrors the Rust SDK (`schedbox-scenario`):
 *
 *   - `sb_info` / `sb_topology` / `sb_needs` / `sb_duration_ms` build what
 *     `describe` returns;
 *   - `SB_CGROUP`, `SB_WORK`, the cpuset, work, hold and kernel-target helpers
 *     build the contract's records and variants;
 *   - one `sb_<op>` constructor per op (`sb_set_cpuset`, `sb_freeze_cgroup`,
 *     ...) makes an `sb_op_t`;
 *   - `SB_BACKDROP`, `SB_STEP`, `SB_STEP_WITH` and `SB_EMIT` emit a whole op
 *     stream and stop at the first rejected call with the Rust SDK's message,
 *     e.g. `step 1, op 2 (set-cpuset): disjoint index 2 is not below of=2 —
 *     use an index in 0..2`;
 *   - `sb_checker_t` with `sb_expect`, `sb_expect_eq`, `sb_expect_steps_passed`
 *     and `sb_fail` collects a verdict; `sb_procs`, `sb_worker_metrics`,
 *     `sb_kernel_read_u64` look into the results; `sb_step_metrics` fetches the
 *     guest's state at each step's end (`sb_step_cgroup` looks into one);
 *   - `SB_EXPORT_SCENARIO(describe, run, check)` defines the three exports.
 *
 * Everything here is `static inline`: include it from the one `.c` file that
 * uses `SB_EXPORT_SCENARIO` (and from any other that needs it).
 *
 * Lifetimes: the lists built by the macros are compound literals, alive until
 * the end of the enclosing block. Build and emit the stream in the same
 * function (as in the examples) and nothing needs freeing.
 */
#ifndef SCHEDBOX_H
#define SCHEDBOX_H

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Short names for the generated types.                                     */

typedef scenario_string_t sb_string_t;
typedef schedbox_scenario_types_cgroup_def_t sb_cgroup_t;
typedef schedbox_scenario_types_cpuset_spec_t sb_cpuset_t;
typedef schedbox_scenario_types_work_spec_t sb_work_t;
typedef schedbox_scenario_types_work_type_t sb_work_type_t;
typedef schedbox_scenario_types_worker_count_t sb_worker_count_t;
typedef schedbox_scenario_types_sched_policy_t sb_policy_t;
typedef schedbox_scenario_types_affinity_intent_t sb_affinity_t;
typedef schedbox_scenario_types_spawn_placement_t sb_placement_t;
typedef schedbox_scenario_types_hold_spec_t sb_hold_t;
typedef schedbox_scenario_types_kernel_target_t sb_kernel_target_t;
typedef schedbox_scenario_types_kernel_value_t sb_kernel_value_t;
typedef schedbox_scenario_types_kernel_value_width_t sb_kernel_width_t;
typedef schedbox_scenario_types_kernel_write_t sb_kernel_write_t;
typedef schedbox_scenario_types_irq_selector_t sb_irq_t;
typedef schedbox_scenario_types_op_error_t sb_op_error_t;
typedef schedbox_scenario_types_results_t sb_results_t;
typedef schedbox_scenario_types_worker_metrics_t sb_worker_metrics_t;
typedef schedbox_scenario_types_step_result_t sb_step_result_t;
typedef schedbox_scenario_types_topology_t sb_topology_t;

/* The number of elements of a compound-literal array of TYPE. */
#define SB_COUNT(TYPE, ...) (sizeof((TYPE[]){__VA_ARGS__}) / sizeof(TYPE))
/* A generated list struct (`{ptr, len}`) of TYPE elements. */
#define SB_LIST(TYPE, ...) {(TYPE[]){__VA_ARGS__}, SB_COUNT(TYPE, __VA_ARGS__)}

/* A borrowed string: points into `s`, no copy. */
static inline sb_string_t sb_str(const char *s) {
    return (sb_string_t){(uint8_t *)s, strlen(s)};
}

/* A malloc'd copy, for values handed back to the host (freed after the call). */
static inline sb_string_t sb_str_dup(const char *s) {
    size_t n = strlen(s);
    uint8_t *p = n ? (uint8_t *)malloc(n) : NULL;
    if (n) memcpy(p, s, n);
    return (sb_string_t){p, n};
}

/* Whether a contract string equals the C string `s`. */
static inline bool sb_str_eq(sb_string_t a, const char *s) {
    size_t n = strlen(s);
    return a.len == n && (n == 0 || memcmp(a.ptr, s, n) == 0);
}

/* ------------------------------------------------------------------------ */
/* describe: the scenario's name, needs and shape.                         */

enum { SB_MAX_INFO_ITEMS = 16 };

typedef enum {
    SB_SCHED_EXT = SCHEDBOX_SCENARIO_TYPES_KERNEL_FEATURE_SCHED_EXT,
    SB_BTF = SCHEDBOX_SCENARIO_TYPES_KERNEL_FEATURE_BTF,
    SB_CGROUP_V2 = SCHEDBOX_SCENARIO_TYPES_KERNEL_FEATURE_CGROUP_V2,
} sb_feature_t;

typedef struct {
    const char *name;
    const char *summary;
    sb_topology_t topology;
    uint8_t features[SB_MAX_INFO_ITEMS];
    size_t n_features;
    const char *payloads[SB_MAX_INFO_ITEMS];
    size_t n_payloads;
    const char *schedulers[SB_MAX_INFO_ITEMS];
    size_t n_schedulers;
    uint64_t duration_ms;
} sb_info_t;

/* Like the Rust SDK's `ScenarioInfo::new`: 1 node × 1 LLC × 2 cores × 1
 * thread, no features, payloads or schedulers, 3 s. */
static inline sb_info_t sb_info(const char *name, const char *summary) {
    sb_info_t i;
    memset(&i, 0, sizeof i);
    i.name = name;
    i.summary = summary;
    i.topology = (sb_topology_t){1, 1, 2, 1};
    i.duration_ms = 3000;
    return i;
}

static inline void sb_topology(sb_info_t *i, uint32_t numa_nodes, uint32_t llcs_per_node, uint32_t cores_per_llc,
                               uint32_t threads_per_core) {
    i->topology = (sb_topology_t){numa_nodes, llcs_per_node, cores_per_llc, threads_per_core};
}

/* A kernel feature the scenario needs (listed once however often named). */
static inline void sb_needs(sb_info_t *i, sb_feature_t f) {
    for (size_t k = 0; k < i->n_features; k++)
        if (i->features[k] == (uint8_t)f) return;
    if (i->n_features < SB_MAX_INFO_ITEMS) i->features[i->n_features++] = (uint8_t)f;
}

static inline void sb_payload(sb_info_t *i, const char *name) {
    if (i->n_payloads < SB_MAX_INFO_ITEMS) i->payloads[i->n_payloads++] = name;
}

/* Declare every scheduler the scheduler ops use, `fixture` included. */
static inline void sb_scheduler(sb_info_t *i, const char *name) {
    if (i->n_schedulers < SB_MAX_INFO_ITEMS) i->schedulers[i->n_schedulers++] = name;
}

/* The scenario duration: the base of `sb_frac` holds. */
static inline void sb_duration_ms(sb_info_t *i, uint64_t ms) { i->duration_ms = ms; }

static inline scenario_list_string_t sb__dup_strings(const char *const *s, size_t n) {
    scenario_list_string_t l = {NULL, n};
    if (n) {
        l.ptr = (sb_string_t *)malloc(n * sizeof(sb_string_t));
        for (size_t k = 0; k < n; k++) l.ptr[k] = sb_str_dup(s[k]);
    }
    return l;
}

static inline void sb__info_into(const sb_info_t *i, scenario_scenario_info_t *ret) {
    ret->name = sb_str_dup(i->name);
    ret->summary = sb_str_dup(i->summary);
    ret->topology = i->topology;
    ret->kernel_features.len = i->n_features;
    ret->kernel_features.ptr = NULL;
    if (i->n_features) {
        ret->kernel_features.ptr = (schedbox_scenario_types_kernel_feature_t *)malloc(
            i->n_features * sizeof(schedbox_scenario_types_kernel_feature_t));
        for (size_t k = 0; k < i->n_features; k++) ret->kernel_features.ptr[k].tag = i->features[k];
    }
    ret->payloads = sb__dup_strings(i->payloads, i->n_payloads);
    ret->schedulers = sb__dup_strings(i->schedulers, i->n_schedulers);
    ret->duration_ms = i->duration_ms;
}

/* ------------------------------------------------------------------------ */
/* Cpuset specs.                                                             */

static inline sb_cpuset_t sb_llc(uint32_t index) {
    sb_cpuset_t s = {.tag = SCHEDBOX_SCENARIO_TYPES_CPUSET_SPEC_LLC};
    s.val.llc = index;
    return s;
}
static inline sb_cpuset_t sb_numa(uint32_t index) {
    sb_cpuset_t s = {.tag = SCHEDBOX_SCENARIO_TYPES_CPUSET_SPEC_NUMA};
    s.val.numa = index;
    return s;
}
/* Fractional range [start, end) of the usable CPUs. */
static inline sb_cpuset_t sb_range(double start, double end) {
    sb_cpuset_t s = {.tag = SCHEDBOX_SCENARIO_TYPES_CPUSET_SPEC_RANGE};
    s.val.range = (schedbox_scenario_types_frac_range_t){start, end};
    return s;
}
/* Set `index` of `of` equal disjoint sets of the usable CPUs. */
static inline sb_cpuset_t sb_disjoint(uint32_t index, uint32_t of) {
    sb_cpuset_t s = {.tag = SCHEDBOX_SCENARIO_TYPES_CPUSET_SPEC_DISJOINT};
    s.val.disjoint = (schedbox_scenario_types_partition_t){index, of};
    return s;
}
static inline sb_cpuset_t sb_overlap(uint32_t index, uint32_t of, double frac) {
    sb_cpuset_t s = {.tag = SCHEDBOX_SCENARIO_TYPES_CPUSET_SPEC_OVERLAP};
    s.val.overlap = (schedbox_scenario_types_overlap_partition_t){index, of, frac};
    return s;
}
/* Exactly these CPUs: `sb_exact_cpus(0, 2, 3)`. */
#define sb_exact_cpus(...) \
    ((sb_cpuset_t){.tag = SCHEDBOX_SCENARIO_TYPES_CPUSET_SPEC_EXACT, .val.exact = SB_LIST(uint32_t, __VA_ARGS__)})

/* ------------------------------------------------------------------------ */
/* Work specs.                                                               */

static inline sb_work_type_t sb__work(uint8_t tag) { return (sb_work_type_t){.tag = tag}; }
#define sb_spin_wait() sb__work(SCHEDBOX_SCENARIO_TYPES_WORK_TYPE_SPIN_WAIT)
#define sb_yield_heavy() sb__work(SCHEDBOX_SCENARIO_TYPES_WORK_TYPE_YIELD_HEAVY)
#define sb_mixed() sb__work(SCHEDBOX_SCENARIO_TYPES_WORK_TYPE_MIXED)
#define sb_fork_exit() sb__work(SCHEDBOX_SCENARIO_TYPES_WORK_TYPE_FORK_EXIT)
#define sb_wait_on_futex() sb__work(SCHEDBOX_SCENARIO_TYPES_WORK_TYPE_WAIT_ON_FUTEX)
static inline sb_work_type_t sb_bursty(uint64_t burst_ms, uint64_t sleep_ms) {
    sb_work_type_t w = sb__work(SCHEDBOX_SCENARIO_TYPES_WORK_TYPE_BURSTY);
    w.val.bursty = (schedbox_scenario_types_bursty_t){burst_ms, sleep_ms};
    return w;
}
static inline sb_work_type_t sb_futex_ping_pong(uint64_t spin_iters) {
    sb_work_type_t w = sb__work(SCHEDBOX_SCENARIO_TYPES_WORK_TYPE_FUTEX_PING_PONG);
    w.val.futex_ping_pong = spin_iters;
    return w;
}
static inline sb_work_type_t sb_futex_fan_out(uint32_t fan_out, uint64_t spin_iters) {
    sb_work_type_t w = sb__work(SCHEDBOX_SCENARIO_TYPES_WORK_TYPE_FUTEX_FAN_OUT);
    w.val.futex_fan_out = (schedbox_scenario_types_futex_fan_out_t){fan_out, spin_iters};
    return w;
}
static inline sb_work_type_t sb_pipe_io(uint64_t bytes) {
    sb_work_type_t w = sb__work(SCHEDBOX_SCENARIO_TYPES_WORK_TYPE_PIPE_IO);
    w.val.pipe_io = bytes;
    return w;
}
static inline sb_work_type_t sb_cache_pressure(uint32_t size_kib, uint32_t stride) {
    sb_work_type_t w = sb__work(SCHEDBOX_SCENARIO_TYPES_WORK_TYPE_CACHE_PRESSURE);
    w.val.cache_pressure = (schedbox_scenario_types_cache_pressure_t){size_kib, stride};
    return w;
}
static inline sb_work_type_t sb_wake_chain(uint32_t depth) {
    sb_work_type_t w = sb__work(SCHEDBOX_SCENARIO_TYPES_WORK_TYPE_WAKE_CHAIN);
    w.val.wake_chain = depth;
    return w;
}
static inline sb_work_type_t sb_sleep_work(uint64_t ms) {
    sb_work_type_t w = sb__work(SCHEDBOX_SCENARIO_TYPES_WORK_TYPE_SLEEP);
    w.val.sleep = ms;
    return w;
}
/* Phases of a `sb_sequence`. */
#define SB__PHASE(TAG, FIELD, MS) ((schedbox_scenario_types_phase_t){.tag = (TAG), .val.FIELD = (MS)})
#define sb_phase_spin(ms) SB__PHASE(SCHEDBOX_SCENARIO_TYPES_PHASE_SPIN, spin, ms)
#define sb_phase_sleep(ms) SB__PHASE(SCHEDBOX_SCENARIO_TYPES_PHASE_SLEEP, sleep, ms)
#define sb_phase_yield(ms) SB__PHASE(SCHEDBOX_SCENARIO_TYPES_PHASE_YIELD, yield, ms)
#define sb_sequence(...)                                          \
    ((sb_work_type_t){.tag = SCHEDBOX_SCENARIO_TYPES_WORK_TYPE_SEQUENCE, \
                      .val.sequence = SB_LIST(schedbox_scenario_types_phase_t, __VA_ARGS__)})

static inline sb_worker_count_t sb_count(uint32_t n) {
    return (sb_worker_count_t){.tag = SCHEDBOX_SCENARIO_TYPES_WORKER_COUNT_COUNT, .val.count = n};
}
/* Percent (0 < pct <= 100) of the CPUs of the target cgroup's cpuset. */
static inline sb_worker_count_t sb_pct(double pct) {
    return (sb_worker_count_t){.tag = SCHEDBOX_SCENARIO_TYPES_WORKER_COUNT_PCT, .val.pct = pct};
}

#define sb_normal() ((sb_policy_t){.tag = SCHEDBOX_SCENARIO_TYPES_SCHED_POLICY_NORMAL})
#define sb_batch() ((sb_policy_t){.tag = SCHEDBOX_SCENARIO_TYPES_SCHED_POLICY_BATCH})
#define sb_idle() ((sb_policy_t){.tag = SCHEDBOX_SCENARIO_TYPES_SCHED_POLICY_IDLE})
#define sb_fifo(prio) ((sb_policy_t){.tag = SCHEDBOX_SCENARIO_TYPES_SCHED_POLICY_FIFO, .val.fifo = (prio)})
#define sb_rr(prio) ((sb_policy_t){.tag = SCHEDBOX_SCENARIO_TYPES_SCHED_POLICY_RR, .val.rr = (prio)})
#define sb_ext() ((sb_policy_t){.tag = SCHEDBOX_SCENARIO_TYPES_SCHED_POLICY_EXT})

#define sb_inherit() ((sb_affinity_t){.tag = SCHEDBOX_SCENARIO_TYPES_AFFINITY_INTENT_INHERIT})
#define sb_random_subset(n) \
    ((sb_affinity_t){.tag = SCHEDBOX_SCENARIO_TYPES_AFFINITY_INTENT_RANDOM_SUBSET, .val.random_subset = (n)})
#define sb_llc_aligned() ((sb_affinity_t){.tag = SCHEDBOX_SCENARIO_TYPES_AFFINITY_INTENT_LLC_ALIGNED})
#define sb_cross_cgroup() ((sb_affinity_t){.tag = SCHEDBOX_SCENARIO_TYPES_AFFINITY_INTENT_CROSS_CGROUP})
#define sb_single_cpu() ((sb_affinity_t){.tag = SCHEDBOX_SCENARIO_TYPES_AFFINITY_INTENT_SINGLE_CPU})
#define sb_smt_sibling_pair() ((sb_affinity_t){.tag = SCHEDBOX_SCENARIO_TYPES_AFFINITY_INTENT_SMT_SIBLING_PAIR})
#define sb_affinity_exact(...) \
    ((sb_affinity_t){.tag = SCHEDBOX_SCENARIO_TYPES_AFFINITY_INTENT_EXACT, .val.exact = SB_LIST(uint32_t, __VA_ARGS__)})

/* Like the Rust SDK's `WorkSpec::default()` (one spin-wait worker,
 * SCHED_NORMAL, nice 0, inherited affinity, no thread name) with the given
 * fields overridden: `SB_WORK(.workers = sb_count(4), .work = sb_yield_heavy())`.
 * Every field left out is zero, which is its default, except `workers`. */
#define SB_WORK(...)                                                            \
    _Pragma("clang diagnostic push") _Pragma("clang diagnostic ignored \"-Winitializer-overrides\"") \
    ((sb_work_t){.workers = {.tag = SCHEDBOX_SCENARIO_TYPES_WORKER_COUNT_COUNT, .val.count = 1}, __VA_ARGS__}) \
    _Pragma("clang diagnostic pop")

/* `count` default spin-wait workers (the Rust SDK's `CgroupDef::workers(count)`). */
static inline sb_work_t sb_spinners(uint32_t count) {
    sb_work_t w;
    memset(&w, 0, sizeof w);
    w.workers = sb_count(count);
    return w;
}
/* A thread name for `SB_WORK(.comm = sb_comm("name"))`. */
#define sb_comm(name) ((scenario_option_string_t){.is_some = true, .val = sb_str(name)})

/* ------------------------------------------------------------------------ */
/* Cgroup definitions.                                                       */

/* A cgroup with no knobs, no workers and no payload, then the given fields:
 *   SB_CGROUP("left", .cpuset = SB_SOME(sb_disjoint(0, 2)), .workers = SB_WORKERS(sb_spinners(2)))
 * Fields left out are None / empty / false. */
#define SB_CGROUP(NAME, ...) ((sb_cgroup_t){.name = sb_str(NAME), __VA_ARGS__})
/* An option field's value: `.cpuset = SB_SOME(...)`, `.cpu_weight = SB_SOME(200)`. */
#define SB_SOME(...) {.is_some = true, .val = __VA_ARGS__}
/* The worker groups of a cgroup: `.workers = SB_WORKERS(sb_spinners(2), SB_WORK(...))`. */
#define SB_WORKERS(...) SB_LIST(sb_work_t, __VA_ARGS__)
/* `.cpuset_mems = SB_MEMS(0, 1)`. */
#define SB_MEMS(...) SB_SOME(SB_LIST(uint32_t, __VA_ARGS__))
/* `.cpu_max = SB_CPU_MAX(50000, 100000)`. */
#define SB_CPU_MAX(quota_us, period_us) SB_SOME({(quota_us), (period_us)})
/* `.payload = SB_PAYLOAD("stress", "--cpu", "2")`. */
#define SB_PAYLOAD(NAME, ...) \
    SB_SOME({.name = sb_str(NAME), .args = SB_LIST(sb_string_t, SB__STRS(__VA_ARGS__))})

/* Up to 8 C strings to contract strings, for lists. */
#define SB__S1(a) sb_str(a)
#define SB__STRS(...) SB__STRS_N(__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0)(__VA_ARGS__)
#define SB__STRS_N(_1, _2, _3, _4, _5, _6, _7, _8, N, ...) SB__STRS_##N
#define SB__STRS_1(a) sb_str(a)
#define SB__STRS_2(a, ...) sb_str(a), SB__STRS_1(__VA_ARGS__)
#define SB__STRS_3(a, ...) sb_str(a), SB__STRS_2(__VA_ARGS__)
#define SB__STRS_4(a, ...) sb_str(a), SB__STRS_3(__VA_ARGS__)
#define SB__STRS_5(a, ...) sb_str(a), SB__STRS_4(__VA_ARGS__)
#define SB__STRS_6(a, ...) sb_str(a), SB__STRS_5(__VA_ARGS__)
#define SB__STRS_7(a, ...) sb_str(a), SB__STRS_6(__VA_ARGS__)
#define SB__STRS_8(a, ...) sb_str(a), SB__STRS_7(__VA_ARGS__)

/* ------------------------------------------------------------------------ */
/* Holds.                                                                    */

/* Hold for this fraction (0 < frac <= 1) of the scenario duration. */
static inline sb_hold_t sb_frac(double frac) {
    return (sb_hold_t){.tag = SCHEDBOX_SCENARIO_TYPES_HOLD_SPEC_FRAC, .val.frac = frac};
}
/* Hold for a fixed time. */
static inline sb_hold_t sb_fixed_ms(uint64_t ms) {
    return (sb_hold_t){.tag = SCHEDBOX_SCENARIO_TYPES_HOLD_SPEC_FIXED, .val.fixed = ms};
}
/* Re-apply the step's ops every `ms` until the scenario duration is used. */
static inline sb_hold_t sb_loop_ms(uint64_t ms) {
    return (sb_hold_t){.tag = SCHEDBOX_SCENARIO_TYPES_HOLD_SPEC_LOOP, .val.loop = ms};
}
/* The whole scenario duration. */
#define SB_FULL sb_frac(1.0)

/* ------------------------------------------------------------------------ */
/* Kernel targets, values and widths.                                        */

static inline sb_kernel_target_t sb_symbol(const char *name) {
    return (sb_kernel_target_t){.tag = SCHEDBOX_SCENARIO_TYPES_KERNEL_TARGET_SYMBOL, .val.symbol = sb_str(name)};
}
static inline sb_kernel_target_t sb_direct(uint64_t kva) {
    return (sb_kernel_target_t){.tag = SCHEDBOX_SCENARIO_TYPES_KERNEL_TARGET_DIRECT, .val.direct = kva};
}
static inline sb_kernel_target_t sb_kva(uint64_t kva) {
    return (sb_kernel_target_t){.tag = SCHEDBOX_SCENARIO_TYPES_KERNEL_TARGET_KVA, .val.kva = kva};
}
/* `field` (dot-separated) of CPU `cpu`'s copy of the per-CPU `symbol`. */
static inline sb_kernel_target_t sb_per_cpu_field(const char *symbol, const char *field, uint32_t cpu) {
    sb_kernel_target_t t = {.tag = SCHEDBOX_SCENARIO_TYPES_KERNEL_TARGET_PER_CPU_FIELD};
    t.val.per_cpu_field = (schedbox_scenario_types_per_cpu_field_t){sb_str(symbol), sb_str(field), cpu};
    return t;
}
static inline sb_kernel_target_t sb_task_field(uint32_t pid, uint64_t expected_start_time_ns, const char *field) {
    sb_kernel_target_t t = {.tag = SCHEDBOX_SCENARIO_TYPES_KERNEL_TARGET_TASK_FIELD};
    t.val.task_field = (schedbox_scenario_types_task_field_t){pid, expected_start_time_ns, sb_str(field)};
    return t;
}
#define sb_width_u32() ((sb_kernel_width_t){.tag = SCHEDBOX_SCENARIO_TYPES_KERNEL_VALUE_WIDTH_U32})
#define sb_width_u64() ((sb_kernel_width_t){.tag = SCHEDBOX_SCENARIO_TYPES_KERNEL_VALUE_WIDTH_U64})
#define sb_width_bytes(n) ((sb_kernel_width_t){.tag = SCHEDBOX_SCENARIO_TYPES_KERNEL_VALUE_WIDTH_BYTES, .val.bytes = (n)})
#define sb_value_u32(v) ((sb_kernel_value_t){.tag = SCHEDBOX_SCENARIO_TYPES_KERNEL_VALUE_U32, .val.u32 = (v)})
#define sb_value_u64(v) ((sb_kernel_value_t){.tag = SCHEDBOX_SCENARIO_TYPES_KERNEL_VALUE_U64, .val.u64 = (v)})
#define sb_value_or_u32(v) ((sb_kernel_value_t){.tag = SCHEDBOX_SCENARIO_TYPES_KERNEL_VALUE_OR_U32, .val.or_u32 = (v)})
#define sb_value_bytes(...) \
    ((sb_kernel_value_t){.tag = SCHEDBOX_SCENARIO_TYPES_KERNEL_VALUE_BYTES, .val.bytes = SB_LIST(uint8_t, __VA_ARGS__)})
#define sb_kernel_write(target, value) ((sb_kernel_write_t){(target), (value)})

#define sb_irq_number(n) ((sb_irq_t){.tag = SCHEDBOX_SCENARIO_TYPES_IRQ_SELECTOR_BY_NUMBER, .val.by_number = (n)})
#define sb_irq_label(s) ((sb_irq_t){.tag = SCHEDBOX_SCENARIO_TYPES_IRQ_SELECTOR_BY_LABEL, .val.by_label = sb_str(s)})

/* ------------------------------------------------------------------------ */
/* Ops: one constructor per `ops` import.                                    */

typedef enum {
    SB_OP_ADD_CGROUP,
    SB_OP_ADD_CGROUP_DEF,
    SB_OP_REMOVE_CGROUP,
    SB_OP_SET_CPUSET,
    SB_OP_CLEAR_CPUSET,
    SB_OP_SWAP_CPUSETS,
    SB_OP_FREEZE_CGROUP,
    SB_OP_UNFREEZE_CGROUP,
    SB_OP_CAPTURE_CGROUP_PROCS,
    SB_OP_SPAWN,
    SB_OP_STOP_CGROUP,
    SB_OP_SET_AFFINITY,
    SB_OP_MOVE_ALL_TASKS,
    SB_OP_RUN_PAYLOAD,
    SB_OP_WAIT_PAYLOAD,
    SB_OP_KILL_PAYLOAD,
    SB_OP_CAPTURE_SNAPSHOT,
    SB_OP_WATCH_SNAPSHOT,
    SB_OP_WRITE_KERNEL_HOT,
    SB_OP_WRITE_KERNEL_COLD,
    SB_OP_READ_KERNEL_HOT,
    SB_OP_READ_KERNEL_COLD,
    SB_OP_ATTACH_SCHEDULER,
    SB_OP_DETACH_SCHEDULER,
    SB_OP_RESTART_SCHEDULER,
    SB_OP_REPLACE_SCHEDULER,
    SB_OP_PIN_BPF_MAP,
    SB_OP_STEER_IRQ,
    SB_OP_STEER_IRQ_CPUS,
} sb_op_kind_t;

/* One op; build it with the `sb_<op>` constructors below. */
typedef struct {
    sb_op_kind_t kind;
    sb_string_t a, b;          /* the op's string arguments, in WIT order */
    bool has_cgroup;           /* payload ops: whether `b` (the cgroup) is given */
    sb_cgroup_t def;
    sb_cpuset_t cpus;
    sb_placement_t placement;
    sb_work_t work;
    bool work_v2;              /* spawn-work: `work2` instead of `work` */
    bool threads;              /* spawn-threads: the `work2` workers are threads of one process */
    schedbox_scenario_ops_work_spec_v2_t work2;
    sb_affinity_t affinity;
    scenario_list_string_t args;
    schedbox_scenario_ops_list_kernel_write_t writes;
    sb_kernel_target_t target;
    sb_kernel_width_t width;
    sb_irq_t irq;
    uint32_t cpu;
    scenario_list_u32_t cpu_list; /* steer-irq-cpus */
} sb_op_t;

/* The WIT name of an op's import, as error messages name it. */
static inline const char *sb_op_wit_name(sb_op_kind_t k) {
    static const char *const names[] = {
        "add-cgroup", "add-cgroup-def", "remove-cgroup", "set-cpuset", "clear-cpuset", "swap-cpusets",
        "freeze-cgroup", "unfreeze-cgroup", "capture-cgroup-procs", "spawn", "stop-cgroup", "set-affinity",
        "move-all-tasks", "run-payload", "wait-payload", "kill-payload", "capture-snapshot", "watch-snapshot",
        "write-kernel-hot", "write-kernel-cold", "read-kernel-hot", "read-kernel-cold", "attach-scheduler",
        "detach-scheduler", "restart-scheduler", "replace-scheduler", "pin-bpf-map", "steer-irq",
        "steer-irq-cpus",
    };
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static inline sb_op_t sb__op(sb_op_kind_t kind, const char *a, const char *b) {
    sb_op_t op;
    memset(&op, 0, sizeof op);
    op.kind = kind;
    if (a) op.a = sb_str(a);
    if (b) op.b = sb_str(b);
    return op;
}

static inline sb_op_t sb_add_cgroup(const char *name) { return sb__op(SB_OP_ADD_CGROUP, name, NULL); }
static inline sb_op_t sb_add_cgroup_def(sb_cgroup_t def) {
    sb_op_t op = sb__op(SB_OP_ADD_CGROUP_DEF, NULL, NULL);
    op.def = def;
    return op;
}
static inline sb_op_t sb_remove_cgroup(const char *cgroup) { return sb__op(SB_OP_REMOVE_CGROUP, cgroup, NULL); }
static inline sb_op_t sb_set_cpuset(const char *cgroup, sb_cpuset_t cpus) {
    sb_op_t op = sb__op(SB_OP_SET_CPUSET, cgroup, NULL);
    op.cpus = cpus;
    return op;
}
static inline sb_op_t sb_clear_cpuset(const char *cgroup) { return sb__op(SB_OP_CLEAR_CPUSET, cgroup, NULL); }
static inline sb_op_t sb_swap_cpusets(const char *a, const char *b) { return sb__op(SB_OP_SWAP_CPUSETS, a, b); }
static inline sb_op_t sb_freeze_cgroup(const char *cgroup) { return sb__op(SB_OP_FREEZE_CGROUP, cgroup, NULL); }
static inline sb_op_t sb_unfreeze_cgroup(const char *cgroup) { return sb__op(SB_OP_UNFREEZE_CGROUP, cgroup, NULL); }
static inline sb_op_t sb_capture_cgroup_procs(const char *tag, const char *cgroup) {
    return sb__op(SB_OP_CAPTURE_CGROUP_PROCS, tag, cgroup);
}
/* Spawn workers in the runner's own cgroup. */
static inline sb_op_t sb_spawn(sb_work_t work) {
    sb_op_t op = sb__op(SB_OP_SPAWN, NULL, NULL);
    op.placement.tag = SCHEDBOX_SCENARIO_TYPES_SPAWN_PLACEMENT_RUNNER_CGROUP;
    op.work = work;
    return op;
}
/* Spawn workers in an existing managed cgroup. */
static inline sb_op_t sb_spawn_in(const char *cgroup, sb_work_t work) {
    sb_op_t op = sb__op(SB_OP_SPAWN, NULL, NULL);
    op.placement.tag = SCHEDBOX_SCENARIO_TYPES_SPAWN_PLACEMENT_CGROUP;
    op.placement.val.cgroup = sb_str(cgroup);
    op.work = work;
    return op;
}

/* spawn-work: the work types and SCHED_DEADLINE added within 0.1. Build a kind with
 * `sb_w2_<type>(...)`, a spec with `sb_work2(kind, SB_WORK(...))` (count, policy, nice,
 * affinity and comm come from the `SB_WORK`), optionally `sb_work2_deadline(...)`, and
 * spawn it with `sb_spawn_work_in(cgroup, spec)`. */
typedef schedbox_scenario_ops_work_t sb_work2_kind_t;
typedef schedbox_scenario_ops_work_spec_v2_t sb_work2_t;
#define SB__W2(TAG) ((sb_work2_kind_t){.tag = SCHEDBOX_SCENARIO_OPS_WORK_##TAG})
#define SB__W2V(TAG, FIELD, ...) ((sb_work2_kind_t){.tag = SCHEDBOX_SCENARIO_OPS_WORK_##TAG, .val.FIELD = __VA_ARGS__})
#define sb_w2_base(work_type) SB__W2V(BASE, base, (work_type))
#define sb_w2_alu_hot() SB__W2(ALU_HOT)
#define sb_w2_smt_sibling_spin() SB__W2(SMT_SIBLING_SPIN)
#define sb_w2_ipc_variance(phase_ms, size_kib) \
    SB__W2V(IPC_VARIANCE, ipc_variance, (schedbox_scenario_ops_ipc_variance_t){(phase_ms), (size_kib)})
#define sb_w2_fan_out_compute(fan_out, iters) \
    SB__W2V(FAN_OUT_COMPUTE, fan_out_compute, (schedbox_scenario_ops_fan_out_compute_t){(fan_out), (iters)})
#define sb_w2_asymmetric_waker(waker_iters, wakee_iters) \
    SB__W2V(ASYMMETRIC_WAKER, asymmetric_waker, (schedbox_scenario_ops_asymmetric_waker_t){(waker_iters), (wakee_iters)})
#define sb_w2_epoll_storm(waiters) SB__W2V(EPOLL_STORM, epoll_storm, (waiters))
#define sb_w2_thundering_herd(waiters, iters) \
    SB__W2V(THUNDERING_HERD, thundering_herd, (schedbox_scenario_ops_thundering_herd_t){(waiters), (iters)})
#define sb_w2_timer_latency(period_us) SB__W2V(TIMER_LATENCY, timer_latency, (period_us))
#define sb_w2_wake_chain(depth, pipe, iters) \
    SB__W2V(WAKE_CHAIN, wake_chain, (schedbox_scenario_ops_wake_chain_work_t){(depth), (pipe), (iters)})
#define sb_w2_schbench(workers, request_us, sleep_us) \
    SB__W2V(SCHBENCH, schbench, (schedbox_scenario_ops_schbench_t){(workers), (request_us), (sleep_us)})
#define sb_w2_nice_sweep(period_us) SB__W2V(NICE_SWEEP, nice_sweep, (period_us))
#define sb_w2_affinity_churn(period_us) SB__W2V(AFFINITY_CHURN, affinity_churn, (period_us))
#define sb_w2_cross_affinity_churn(period_us) SB__W2V(CROSS_AFFINITY_CHURN, cross_affinity_churn, (period_us))
#define sb_w2_policy_churn(period_us) SB__W2V(POLICY_CHURN, policy_churn, (period_us))
#define sb_w2_cgroup_churn(period_us) SB__W2V(CGROUP_CHURN, cgroup_churn, (period_us))
#define sb_w2_cgroup_attach_storm(period_us) SB__W2V(CGROUP_ATTACH_STORM, cgroup_attach_storm, (period_us))
#define sb_w2_mutex_contention(contenders, hold_iters, work_iters) \
    SB__W2V(MUTEX_CONTENTION, mutex_contention,                   \
            (schedbox_scenario_ops_mutex_contention_t){(contenders), (hold_iters), (work_iters)})
#define sb_w2_priority_inversion(pi, hold_iters) \
    SB__W2V(PRIORITY_INVERSION, priority_inversion, (schedbox_scenario_ops_priority_inversion_t){(pi), (hold_iters)})
#define sb_w2_rt_starvation() SB__W2(RT_STARVATION)
#define sb_w2_preempt_storm(period_us, burst_iters) \
    SB__W2V(PREEMPT_STORM, preempt_storm, (schedbox_scenario_ops_preempt_storm_t){(period_us), (burst_iters)})
#define sb_w2_signal_storm() SB__W2(SIGNAL_STORM)
#define sb_w2_producer_consumer_imbalance(producers, consumers, iters) \
    SB__W2V(PRODUCER_CONSUMER_IMBALANCE, producer_consumer_imbalance, \
            (schedbox_scenario_ops_producer_consumer_t){(producers), (consumers), (iters)})
#define sb_w2_page_fault_churn(size_kib) SB__W2V(PAGE_FAULT_CHURN, page_fault_churn, (size_kib))
/* NUMA (2 or more nodes): move to the next node and its working set along every `period_ms`;
 * bind the working set to each node in turn and sweep it `passes` times there. */
#define sb_w2_numa_migration_churn(period_ms, size_kib) \
    SB__W2V(NUMA_MIGRATION_CHURN, numa_migration_churn, \
            (schedbox_scenario_ops_numa_migration_churn_t){(period_ms), (size_kib)})
#define sb_w2_numa_working_set_sweep(size_kib, passes) \
    SB__W2V(NUMA_WORKING_SET_SWEEP, numa_working_set_sweep, \
            (schedbox_scenario_ops_numa_working_set_sweep_t){(size_kib), (passes)})
/* Block I/O on the guest's null_blk device (sizes: multiples of 4 KiB up to 1024):
 * O_DSYNC sequential writes; O_DIRECT random reads; a writer of write_kib blocks with
 * `readers` 4 KiB random readers behind it (groups of readers + 1). */
#define sb_w2_io_sync_write(block_kib) SB__W2V(IO_SYNC_WRITE, io_sync_write, (block_kib))
#define sb_w2_io_rand_read(block_kib) SB__W2V(IO_RAND_READ, io_rand_read, (block_kib))
#define sb_w2_io_convoy(readers, write_kib) \
    SB__W2V(IO_CONVOY, io_convoy, (schedbox_scenario_ops_io_convoy_t){(readers), (write_kib)})
#define sb_w2_idle_churn(spin_iters, sleep_us) \
    SB__W2V(IDLE_CHURN, idle_churn, (schedbox_scenario_ops_idle_churn_t){(spin_iters), (sleep_us)})
#define sb_w2_cache_yield(size_kib) SB__W2V(CACHE_YIELD, cache_yield, (size_kib))
#define sb_w2_cache_pipe(size_kib) SB__W2V(CACHE_PIPE, cache_pipe, (size_kib))
/* A spawn-work spec doing `kind`, with everything else from `base`. */
static inline sb_work2_t sb_work2(sb_work2_kind_t kind, sb_work_t base) {
    sb_work2_t w;
    memset(&w, 0, sizeof w);
    w.work = kind;
    w.workers = base.workers;
    w.policy.tag = SCHEDBOX_SCENARIO_OPS_POLICY_BASE;
    w.policy.val.base = base.policy;
    w.nice = base.nice;
    w.affinity = base.affinity;
    w.comm = base.comm;
    return w;
}
/* `w` with SCHED_DEADLINE: `runtime_us` every `period_us`, due `deadline_us` into it. */
static inline sb_work2_t sb_work2_deadline(sb_work2_t w, uint64_t runtime_us, uint64_t deadline_us,
                                           uint64_t period_us) {
    w.policy.tag = SCHEDBOX_SCENARIO_OPS_POLICY_DEADLINE;
    w.policy.val.deadline = (schedbox_scenario_ops_deadline_t){runtime_us, deadline_us, period_us};
    return w;
}
/* spawn-work into an existing managed cgroup (the host records a `spawn`). */
static inline sb_op_t sb_spawn_work_in(const char *cgroup, sb_work2_t work) {
    sb_op_t op = sb__op(SB_OP_SPAWN, NULL, NULL);
    op.placement.tag = SCHEDBOX_SCENARIO_TYPES_SPAWN_PLACEMENT_CGROUP;
    op.placement.val.cgroup = sb_str(cgroup);
    op.work_v2 = true;
    op.work2 = work;
    return op;
}

/* spawn-threads: spawn-work with the workers threads of one process (work types that
 * act on their own process are refused). */
static inline sb_op_t sb_spawn_threads_in(const char *cgroup, sb_work2_t work) {
    sb_op_t op = sb_spawn_work_in(cgroup, work);
    op.threads = true;
    return op;
}

static inline sb_op_t sb_stop_cgroup(const char *cgroup) { return sb__op(SB_OP_STOP_CGROUP, cgroup, NULL); }
static inline sb_op_t sb_set_affinity(const char *cgroup, sb_affinity_t affinity) {
    sb_op_t op = sb__op(SB_OP_SET_AFFINITY, cgroup, NULL);
    op.affinity = affinity;
    return op;
}
/* `from` = "" moves the runner-cgroup workers. */
static inline sb_op_t sb_move_all_tasks(const char *from, const char *to) {
    return sb__op(SB_OP_MOVE_ALL_TASKS, from, to);
}
/* `cgroup` may be NULL (the runner's cgroup). Args: `SB_ARGS("-c", "2")` or `SB_NO_ARGS`. */
static inline sb_op_t sb_run_payload(const char *name, scenario_list_string_t args, const char *cgroup) {
    sb_op_t op = sb__op(SB_OP_RUN_PAYLOAD, name, cgroup);
    op.has_cgroup = cgroup != NULL;
    op.args = args;
    return op;
}
#define SB_ARGS(...) ((scenario_list_string_t)SB_LIST(sb_string_t, SB__STRS(__VA_ARGS__)))
#define SB_NO_ARGS ((scenario_list_string_t){NULL, 0})
static inline sb_op_t sb_wait_payload(const char *name, const char *cgroup) {
    sb_op_t op = sb__op(SB_OP_WAIT_PAYLOAD, name, cgroup);
    op.has_cgroup = cgroup != NULL;
    return op;
}
static inline sb_op_t sb_kill_payload(const char *name, const char *cgroup) {
    sb_op_t op = sb__op(SB_OP_KILL_PAYLOAD, name, cgroup);
    op.has_cgroup = cgroup != NULL;
    return op;
}
static inline sb_op_t sb_capture_snapshot(const char *name) { return sb__op(SB_OP_CAPTURE_SNAPSHOT, name, NULL); }
static inline sb_op_t sb_watch_snapshot(const char *symbol) { return sb__op(SB_OP_WATCH_SNAPSHOT, symbol, NULL); }
/* `sb_write_kernel_cold(sb_kernel_write(sb_symbol("x"), sb_value_u32(1)), ...)`. */
#define sb_write_kernel_hot(...) sb__write_kernel(SB_OP_WRITE_KERNEL_HOT, (schedbox_scenario_ops_list_kernel_write_t)SB_LIST(sb_kernel_write_t, __VA_ARGS__))
#define sb_write_kernel_cold(...) sb__write_kernel(SB_OP_WRITE_KERNEL_COLD, (schedbox_scenario_ops_list_kernel_write_t)SB_LIST(sb_kernel_write_t, __VA_ARGS__))
static inline sb_op_t sb__write_kernel(sb_op_kind_t kind, schedbox_scenario_ops_list_kernel_write_t writes) {
    sb_op_t op = sb__op(kind, NULL, NULL);
    op.writes = writes;
    return op;
}
static inline sb_op_t sb__read_kernel(sb_op_kind_t kind, const char *tag, sb_kernel_target_t target,
                                      sb_kernel_width_t width) {
    sb_op_t op = sb__op(kind, tag, NULL);
    op.target = target;
    op.width = width;
    return op;
}
static inline sb_op_t sb_read_kernel_hot(const char *tag, sb_kernel_target_t target, sb_kernel_width_t width) {
    return sb__read_kernel(SB_OP_READ_KERNEL_HOT, tag, target, width);
}
static inline sb_op_t sb_read_kernel_cold(const char *tag, sb_kernel_target_t target, sb_kernel_width_t width) {
    return sb__read_kernel(SB_OP_READ_KERNEL_COLD, tag, target, width);
}
static inline sb_op_t sb_attach_scheduler(const char *name) { return sb__op(SB_OP_ATTACH_SCHEDULER, name, NULL); }
static inline sb_op_t sb_detach_scheduler(void) { return sb__op(SB_OP_DETACH_SCHEDULER, NULL, NULL); }
static inline sb_op_t sb_restart_scheduler(void) { return sb__op(SB_OP_RESTART_SCHEDULER, NULL, NULL); }
static inline sb_op_t sb_replace_scheduler(const char *name) { return sb__op(SB_OP_REPLACE_SCHEDULER, name, NULL); }
static inline sb_op_t sb_pin_bpf_map(const char *name) { return sb__op(SB_OP_PIN_BPF_MAP, name, NULL); }
static inline sb_op_t sb_steer_irq(sb_irq_t irq, uint32_t cpu) {
    sb_op_t op = sb__op(SB_OP_STEER_IRQ, NULL, NULL);
    op.irq = irq;
    op.cpu = cpu;
    return op;
}
static inline sb_op_t sb__steer_irq_cpus(sb_irq_t irq, scenario_list_u32_t cpus) {
    sb_op_t op = sb__op(SB_OP_STEER_IRQ_CPUS, NULL, NULL);
    op.irq = irq;
    op.cpu_list = cpus;
    return op;
}
/* Steer an IRQ to a CPU set: `sb_steer_irq_cpus(sb_irq_number(4), 0, 1, 2, 3)`. */
#define sb_steer_irq_cpus(IRQ, ...) sb__steer_irq_cpus((IRQ), (scenario_list_u32_t)SB_LIST(uint32_t, __VA_ARGS__))

/* Call the op's import now; false (and `*err` filled) when the host rejects it. */
static inline bool sb_op_call(const sb_op_t *o, sb_op_error_t *err) {
    sb_op_t op = *o; /* the imports take non-const pointers; they only read */
    switch (op.kind) {
    case SB_OP_ADD_CGROUP: return schedbox_scenario_ops_add_cgroup(&op.a, err);
    case SB_OP_ADD_CGROUP_DEF: return schedbox_scenario_ops_add_cgroup_def(&op.def, err);
    case SB_OP_REMOVE_CGROUP: return schedbox_scenario_ops_remove_cgroup(&op.a, err);
    case SB_OP_SET_CPUSET: return schedbox_scenario_ops_set_cpuset(&op.a, &op.cpus, err);
    case SB_OP_CLEAR_CPUSET: return schedbox_scenario_ops_clear_cpuset(&op.a, err);
    case SB_OP_SWAP_CPUSETS: return schedbox_scenario_ops_swap_cpusets(&op.a, &op.b, err);
    case SB_OP_FREEZE_CGROUP: return schedbox_scenario_ops_freeze_cgroup(&op.a, err);
    case SB_OP_UNFREEZE_CGROUP: return schedbox_scenario_ops_unfreeze_cgroup(&op.a, err);
    case SB_OP_CAPTURE_CGROUP_PROCS: return schedbox_scenario_ops_capture_cgroup_procs(&op.a, &op.b, err);
    case SB_OP_SPAWN:
        if (op.threads) return schedbox_scenario_ops_spawn_threads(&op.placement, &op.work2, err);
        return op.work_v2 ? schedbox_scenario_ops_spawn_work(&op.placement, &op.work2, err)
                          : schedbox_scenario_ops_spawn(&op.placement, &op.work, err);
    case SB_OP_STOP_CGROUP: return schedbox_scenario_ops_stop_cgroup(&op.a, err);
    case SB_OP_SET_AFFINITY: return schedbox_scenario_ops_set_affinity(&op.a, &op.affinity, err);
    case SB_OP_MOVE_ALL_TASKS: return schedbox_scenario_ops_move_all_tasks(&op.a, &op.b, err);
    case SB_OP_RUN_PAYLOAD:
        return schedbox_scenario_ops_run_payload(&op.a, &op.args, op.has_cgroup ? &op.b : NULL, err);
    case SB_OP_WAIT_PAYLOAD: return schedbox_scenario_ops_wait_payload(&op.a, op.has_cgroup ? &op.b : NULL, err);
    case SB_OP_KILL_PAYLOAD: return schedbox_scenario_ops_kill_payload(&op.a, op.has_cgroup ? &op.b : NULL, err);
    case SB_OP_CAPTURE_SNAPSHOT: return schedbox_scenario_ops_capture_snapshot(&op.a, err);
    case SB_OP_WATCH_SNAPSHOT: return schedbox_scenario_ops_watch_snapshot(&op.a, err);
    case SB_OP_WRITE_KERNEL_HOT: return schedbox_scenario_ops_write_kernel_hot(&op.writes, err);
    case SB_OP_WRITE_KERNEL_COLD: return schedbox_scenario_ops_write_kernel_cold(&op.writes, err);
    case SB_OP_READ_KERNEL_HOT: return schedbox_scenario_ops_read_kernel_hot(&op.a, &op.target, &op.width, err);
    case SB_OP_READ_KERNEL_COLD: return schedbox_scenario_ops_read_kernel_cold(&op.a, &op.target, &op.width, err);
    case SB_OP_ATTACH_SCHEDULER: return schedbox_scenario_ops_attach_scheduler(&op.a, err);
    case SB_OP_DETACH_SCHEDULER: return schedbox_scenario_ops_detach_scheduler(err);
    case SB_OP_RESTART_SCHEDULER: return schedbox_scenario_ops_restart_scheduler(err);
    case SB_OP_REPLACE_SCHEDULER: return schedbox_scenario_ops_replace_scheduler(&op.a, err);
    case SB_OP_PIN_BPF_MAP: return schedbox_scenario_ops_pin_bpf_map(&op.a, err);
    case SB_OP_STEER_IRQ: return schedbox_scenario_ops_steer_irq(&op.irq, op.cpu, err);
    case SB_OP_STEER_IRQ_CPUS: return schedbox_scenario_ops_steer_irq_cpus(&op.irq, &op.cpu_list, err);
    }
    abort();
}

/* ------------------------------------------------------------------------ */
/* The op stream: Backdrop, steps, emit.                                     */

/* What persists across all steps: cgroups and setup ops. */
typedef struct {
    const sb_cgroup_t *cgroups;
    size_t n_cgroups;
    const sb_op_t *ops;
    size_t n_ops;
} sb_backdrop_t;

/* One phase: setup cgroups (removed at its teardown), ops, then a hold. */
typedef struct {
    const sb_cgroup_t *setup;
    size_t n_setup;
    const sb_op_t *ops;
    size_t n_ops;
    sb_hold_t hold;
} sb_step_t;

/* Fields for SB_BACKDROP / SB_STEP_WITH. */
#define SB_CGROUPS(...) .cgroups = (sb_cgroup_t[]){__VA_ARGS__}, .n_cgroups = SB_COUNT(sb_cgroup_t, __VA_ARGS__)
#define SB_SETUP(...) .setup = (sb_cgroup_t[]){__VA_ARGS__}, .n_setup = SB_COUNT(sb_cgroup_t, __VA_ARGS__)
#define SB_OPS(...) .ops = (sb_op_t[]){__VA_ARGS__}, .n_ops = SB_COUNT(sb_op_t, __VA_ARGS__)

/* `SB_BACKDROP(SB_CGROUPS(...), SB_OPS(...))`; either part may be left out. */
#define SB_BACKDROP(...) ((sb_backdrop_t){__VA_ARGS__})
/* An empty Backdrop: no backdrop calls are made. */
#define SB_NO_BACKDROP ((sb_backdrop_t){NULL, 0, NULL, 0})
/* A step of ops (none is fine) and no setup cgroups: `SB_STEP(sb_frac(0.5), op, op)`. */
#define SB_STEP(HOLD, ...) ((sb_step_t){.hold = (HOLD), SB_OPS(__VA_ARGS__)})
/* A step with setup cgroups: `SB_STEP_WITH(hold, SB_SETUP(...), SB_OPS(...))`. */
#define SB_STEP_WITH(HOLD, ...) ((sb_step_t){.hold = (HOLD), __VA_ARGS__})

/* Trimmed (ASCII whitespace) view of a contract string. */
static inline void sb__trim(sb_string_t s, const char **p, size_t *n) {
    const char *b = (const char *)s.ptr;
    size_t len = s.len;
    while (len && isspace((unsigned char)b[0])) b++, len--;
    while (len && isspace((unsigned char)b[len - 1])) len--;
    *p = b;
    *n = len;
}

/* The Rust SDK's message for a rejected call: `<place>[, op <i>] (<call>): <message>[ — <fix>]`.
 * `step` < 0 means the Backdrop; `op` < 0 a structure call. Frees `e`. */
static inline sb_string_t sb__emit_error(long step, long op, const char *call, sb_op_error_t *e) {
    char place[48];
    if (step < 0)
        snprintf(place, sizeof place, "backdrop");
    else
        snprintf(place, sizeof place, "step %ld", step);
    char head[128];
    if (op >= 0)
        snprintf(head, sizeof head, "%s, op %ld (%s): ", place, op, call);
    else
        snprintf(head, sizeof head, "%s (%s): ", place, call);
    const char *msg, *fix;
    size_t nmsg, nfix;
    sb__trim(e->message, &msg, &nmsg);
    sb__trim(e->fix, &fix, &nfix);
    static const char dash[] = " \xE2\x80\x94 "; /* " — " */
    size_t nhead = strlen(head), total = nhead + nmsg + (nfix ? sizeof dash - 1 + nfix : 0);
    uint8_t *out = (uint8_t *)malloc(total ? total : 1), *w = out;
    memcpy(w, head, nhead), w += nhead;
    if (nmsg) memcpy(w, msg, nmsg), w += nmsg;
    if (nfix) {
        memcpy(w, dash, sizeof dash - 1), w += sizeof dash - 1;
        memcpy(w, fix, nfix);
    }
    schedbox_scenario_types_op_error_free(e);
    return (sb_string_t){out, total};
}

static inline bool sb__emit_ops(sb_string_t *err, long place, const sb_op_t *ops, size_t n) {
    for (size_t i = 0; i < n; i++) {
        sb_op_error_t e;
        if (!sb_op_call(&ops[i], &e)) {
            *err = sb__emit_error(place, (long)i, sb_op_wit_name(ops[i].kind), &e);
            return false;
        }
    }
    return true;
}

/* Emit a whole op stream, as the Rust SDK's `emit`: `open-backdrop`, its ops,
 * `close-backdrop` (none of them for an empty Backdrop), then per step
 * `open-step`, its ops and `close-step`. Stops at the first rejection, with
 * `*err` set to a malloc'd message naming where it was (hand it back from
 * `run`, which frees it). Returns whether everything was accepted. */
static inline bool sb_emit(sb_string_t *err, sb_backdrop_t backdrop, const sb_step_t *steps, size_t n_steps) {
    sb_op_error_t e;
    if (backdrop.n_cgroups || backdrop.n_ops) {
        schedbox_scenario_ops_list_cgroup_def_t cgs = {(sb_cgroup_t *)backdrop.cgroups, backdrop.n_cgroups};
        if (!schedbox_scenario_ops_open_backdrop(&cgs, &e)) {
            *err = sb__emit_error(-1, -1, "open-backdrop", &e);
            return false;
        }
        if (!sb__emit_ops(err, -1, backdrop.ops, backdrop.n_ops)) return false;
        if (!schedbox_scenario_ops_close_backdrop(&e)) {
            *err = sb__emit_error(-1, -1, "close-backdrop", &e);
            return false;
        }
    }
    for (size_t i = 0; i < n_steps; i++) {
        schedbox_scenario_ops_list_cgroup_def_t setup = {(sb_cgroup_t *)steps[i].setup, steps[i].n_setup};
        if (!schedbox_scenario_ops_open_step(&setup, &e)) {
            *err = sb__emit_error((long)i, -1, "open-step", &e);
            return false;
        }
        if (!sb__emit_ops(err, (long)i, steps[i].ops, steps[i].n_ops)) return false;
        sb_hold_t hold = steps[i].hold;
        if (!schedbox_scenario_ops_close_step(&hold, &e)) {
            *err = sb__emit_error((long)i, -1, "close-step", &e);
            return false;
        }
    }
    return true;
}

/* `return SB_EMIT(err, backdrop, SB_STEP(...), SB_STEP(...));` from `run`. */
#define SB_EMIT(ERR, BACKDROP, ...) sb_emit((ERR), (BACKDROP), (sb_step_t[]){__VA_ARGS__}, SB_COUNT(sb_step_t, __VA_ARGS__))

/* ------------------------------------------------------------------------ */
/* check: lookups into the results and a checker.                           */

/* The pids captured under `tag` (and their count), or NULL. */
static inline const uint32_t *sb_procs(const sb_results_t *r, const char *tag, size_t *n) {
    for (size_t i = 0; i < r->cgroup_procs.len; i++)
        if (sb_str_eq(r->cgroup_procs.ptr[i].tag, tag)) {
            *n = r->cgroup_procs.ptr[i].pids.len;
            return r->cgroup_procs.ptr[i].pids.ptr ? r->cgroup_procs.ptr[i].pids.ptr : (const uint32_t *)"";
        }
    *n = 0;
    return NULL;
}

/* The worker metrics of `cgroup`, or NULL. */
static inline const sb_worker_metrics_t *sb_worker_metrics(const sb_results_t *r, const char *cgroup) {
    for (size_t i = 0; i < r->workers.len; i++)
        if (sb_str_eq(r->workers.ptr[i].cgroup, cgroup)) return &r->workers.ptr[i];
    return NULL;
}

/* The step metrics (the `metrics` import): the guest at the end of each step that
 * reached its end, in step order, read after the step's hold and before its teardown.
 * Fetch them once in `check` with `sb_step_metrics()` (empty outside `check`) and
 * release them with `sb_step_metrics_free`. */
typedef schedbox_scenario_metrics_list_step_metrics_t sb_step_metrics_list_t;
typedef schedbox_scenario_metrics_step_metrics_t sb_step_metrics_t;
typedef schedbox_scenario_metrics_cgroup_state_t sb_cgroup_state_t;
typedef schedbox_scenario_metrics_worker_stat_t sb_worker_stat_t;

static inline sb_step_metrics_list_t sb_step_metrics(void) {
    sb_step_metrics_list_t l = {0};
    schedbox_scenario_metrics_steps(&l);
    return l;
}

static inline void sb_step_metrics_free(sb_step_metrics_list_t *l) {
    schedbox_scenario_metrics_list_step_metrics_free(l);
}

/* The latencies of every worker of the step metrics, in the same order (step, then
 * its workers): wake-up and request latency, each cumulative since the worker
 * started, `is_some` for the work types that measure them. Fetch once in `check`
 * with `sb_step_latencies()` and release with `sb_step_latencies_free`. */
typedef schedbox_scenario_metrics_list_worker_latency_t sb_latencies_t;
typedef schedbox_scenario_metrics_worker_latency_t sb_worker_latency_t;
typedef schedbox_scenario_metrics_latency_t sb_latency_t;

static inline sb_latencies_t sb_step_latencies(void) {
    sb_latencies_t l = {0};
    schedbox_scenario_metrics_latencies(&l);
    return l;
}

static inline void sb_step_latencies_free(sb_latencies_t *l) { schedbox_scenario_metrics_list_worker_latency_free(l); }

/* The live cgroup `name` at the end of step metrics `s`, or NULL. */
static inline const sb_cgroup_state_t *sb_step_cgroup(const sb_step_metrics_t *s, const char *name) {
    for (size_t i = 0; i < s->cgroups.len; i++)
        if (sb_str_eq(s->cgroups.ptr[i].name, name)) return &s->cgroups.ptr[i];
    return NULL;
}

/* Whether workers were seen on `cpu` (a count above zero). */
static inline bool sb_cpu_seen(const sb_worker_metrics_t *m, uint32_t cpu) {
    for (size_t i = 0; i < m->cpus.len; i++)
        if (m->cpus.ptr[i].cpu == cpu && m->cpus.ptr[i].count > 0) return true;
    return false;
}

/* The kernel read tagged `tag`, or NULL. */
static inline const sb_kernel_value_t *sb_kernel_read(const sb_results_t *r, const char *tag) {
    for (size_t i = 0; i < r->kernel_reads.len; i++)
        if (sb_str_eq(r->kernel_reads.ptr[i].tag, tag)) return &r->kernel_reads.ptr[i].value;
    return NULL;
}

/* The read tagged `tag` as a u64 (u32 and u64 values); false if missing or not numeric. */
static inline bool sb_kernel_read_u64(const sb_results_t *r, const char *tag, uint64_t *out) {
    const sb_kernel_value_t *v = sb_kernel_read(r, tag);
    if (!v) return false;
    if (v->tag == SCHEDBOX_SCENARIO_TYPES_KERNEL_VALUE_U32) return *out = v->val.u32, true;
    if (v->tag == SCHEDBOX_SCENARIO_TYPES_KERNEL_VALUE_U64) return *out = v->val.u64, true;
    return false;
}

/* Collects failed expectations into a verdict. */
typedef struct {
    sb_string_t *failures;
    size_t len, cap;
} sb_checker_t;

/* Record a failure (printf-style). */
__attribute__((format(printf, 2, 3))) static inline void sb_fail(sb_checker_t *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) n = 0;
    char *buf = (char *)malloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(buf, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (c->len == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        c->failures = (sb_string_t *)realloc(c->failures, c->cap * sizeof(sb_string_t));
    }
    c->failures[c->len++] = (sb_string_t){(uint8_t *)buf, (size_t)n};
}

/* Record the failure unless `cond` holds; returns `cond`. */
#define sb_expect(C, COND, ...) ((COND) ? true : (sb_fail((C), __VA_ARGS__), false))

/* Record `<what>: got <got>, want <want>` unless equal; returns whether equal. */
static inline bool sb_expect_eq(sb_checker_t *c, const char *what, uint64_t got, uint64_t want) {
    return sb_expect(c, got == want, "%s: got %llu, want %llu", what, (unsigned long long)got,
                     (unsigned long long)want);
}

/* A failure for every step that did not pass (with its error), or one when
 * there are no step results; returns whether all passed. */
static inline bool sb_expect_steps_passed(sb_checker_t *c, const sb_results_t *r) {
    if (r->steps.len == 0) {
        sb_fail(c, "no step results");
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < r->steps.len; i++) {
        const sb_step_result_t *s = &r->steps.ptr[i];
        if (s->status == SCHEDBOX_SCENARIO_TYPES_STEP_STATUS_PASSED) continue;
        ok = false;
        const char *status = s->status == SCHEDBOX_SCENARIO_TYPES_STEP_STATUS_FAILED ? "failed" : "was skipped";
        if (s->error.is_some)
            sb_fail(c, "step %u %s: %.*s", (unsigned)s->index, status, (int)s->error.val.len,
                    (const char *)s->error.val.ptr);
        else
            sb_fail(c, "step %u %s: no error given", (unsigned)s->index, status);
    }
    return ok;
}

/* ------------------------------------------------------------------------ */
/* Assertions on the step metrics, with the Rust SDK's names, semantics and   */
/* messages (bounds print with %g). Each judges the per-step differences of   */
/* the cumulative counters (a worker is followed by its tid), records one     */
/* failure per offending cgroup, worker and step, and returns whether         */
/* everything held. None passes on missing data.                             */

typedef schedbox_scenario_metrics_list_step_metrics_t sb__steps_t;

static inline const sb_worker_stat_t *sb__prev_worker(const sb__steps_t *s, size_t i, const sb_worker_stat_t *w) {
    if (i == 0) return NULL;
    const sb_step_metrics_t *p = &s->ptr[i - 1];
    for (size_t j = 0; j < p->workers.len; j++)
        if (p->workers.ptr[j].tid == w->tid) return &p->workers.ptr[j];
    return NULL;
}

static inline uint64_t sb__sat_sub(uint64_t a, uint64_t b) { return a < b ? 0 : a - b; }

static inline uint64_t sb__units_in_step(const sb__steps_t *s, size_t i, const sb_worker_stat_t *w) {
    const sb_worker_stat_t *p = sb__prev_worker(s, i, w);
    return p ? sb__sat_sub(w->work_units, p->work_units) : w->work_units;
}

static inline uint64_t sb__wall_in_step(const sb__steps_t *s, size_t i, const sb_worker_stat_t *w) {
    const sb_worker_stat_t *p = sb__prev_worker(s, i, w);
    return p ? sb__sat_sub(w->wall_time_ns, p->wall_time_ns) : w->wall_time_ns;
}

/* Whether `w` was seen on `cpu` during step `i`. */
static inline bool sb__cpu_in_step(const sb__steps_t *s, size_t i, const sb_worker_stat_t *w, uint32_t cpu,
                                   uint64_t count) {
    const sb_worker_stat_t *p = sb__prev_worker(s, i, w);
    uint64_t before = 0;
    if (p)
        for (size_t k = 0; k < p->cpus.len; k++)
            if (p->cpus.ptr[k].cpu == cpu) before = p->cpus.ptr[k].count;
    return count > before;
}

static inline bool sb__in_list(const scenario_list_u32_t *l, uint32_t x) {
    for (size_t k = 0; k < l->len; k++)
        if (l->ptr[k] == x) return true;
    return false;
}

/* Appends `cpus` as "0,2,3" to buf. */
static inline void sb__cpu_text(char *buf, size_t cap, const uint32_t *cpus, size_t n) {
    size_t at = 0;
    buf[0] = 0;
    for (size_t k = 0; k < n && at < cap; k++) at += (size_t)snprintf(buf + at, cap - at, k ? ",%u" : "%u", cpus[k]);
}

static inline void sb__ratio_text(char *buf, size_t cap, double r) {
    if (r != r || r > 1.7976931348623157e308 || r < -1.7976931348623157e308)
        snprintf(buf, cap, "inf");
    else
        snprintf(buf, cap, "%.2f", r);
}

static inline long sb__step_index(const sb__steps_t *s, uint32_t step) {
    for (size_t i = 0; i < s->len; i++)
        if (s->ptr[i].step == step) return (long)i;
    return -1;
}

static inline bool sb__steps_with(sb_checker_t *c, const sb__steps_t *s, const char *cgroup, const char *what) {
    for (size_t i = 0; i < s->len; i++)
        if (sb_step_cgroup(&s->ptr[i], cgroup)) return true;
    sb_fail(c, "%s: cgroup `%s` is in no step's metrics (%zu steps)", what, cgroup, s->len);
    return false;
}

/* Isolation: in every step where `cgroup` lived, each of its workers ran only on
 * CPUs of its resolved cpuset (at that step's end, or at the previous step's end). */
static inline bool sb_expect_isolation(sb_checker_t *c, const sb__steps_t *s, const char *cgroup) {
    if (!sb__steps_with(c, s, cgroup, "isolation")) return false;
    bool ok = true;
    for (size_t i = 0; i < s->len; i++) {
        const sb_cgroup_state_t *cg = sb_step_cgroup(&s->ptr[i], cgroup);
        if (!cg) continue;
        const sb_cgroup_state_t *prev = i ? sb_step_cgroup(&s->ptr[i - 1], cgroup) : NULL;
        for (size_t j = 0; j < s->ptr[i].workers.len; j++) {
            const sb_worker_stat_t *w = &s->ptr[i].workers.ptr[j];
            if (!sb_str_eq(w->cgroup, cgroup)) continue;
            uint32_t outside[256];
            size_t n = 0;
            for (size_t k = 0; k < w->cpus.len && n < 256; k++) {
                uint32_t cpu = w->cpus.ptr[k].cpu;
                if (!sb__cpu_in_step(s, i, w, cpu, w->cpus.ptr[k].count)) continue;
                if (sb__in_list(&cg->cpus_effective, cpu) || (prev && sb__in_list(&prev->cpus_effective, cpu))) continue;
                outside[n++] = cpu;
            }
            if (n) {
                ok = false;
                char out[1024], set[1024];
                sb__cpu_text(out, sizeof out, outside, n);
                sb__cpu_text(set, sizeof set, cg->cpus_effective.ptr, cg->cpus_effective.len);
                sb_fail(c, "isolation: step %u, cgroup `%s`, worker %u: ran on CPUs %s outside its cpuset %s",
                        (unsigned)s->ptr[i].step, cgroup, (unsigned)w->tid, out, set);
            }
        }
    }
    return ok;
}

/* Not starved: in every step where `cgroup` lived, each of its live workers did
 * some work, and none had a gap between two iterations longer than `max_gap_ns`. */
static inline bool sb_expect_not_starved(sb_checker_t *c, const sb__steps_t *s, const char *cgroup,
                                         uint64_t max_gap_ns) {
    if (!sb__steps_with(c, s, cgroup, "not starved")) return false;
    bool ok = true;
    for (size_t i = 0; i < s->len; i++) {
        if (!sb_step_cgroup(&s->ptr[i], cgroup)) continue;
        size_t live = 0;
        for (size_t j = 0; j < s->ptr[i].workers.len; j++) {
            const sb_worker_stat_t *w = &s->ptr[i].workers.ptr[j];
            if (sb_str_eq(w->cgroup, cgroup) && w->alive) live++;
        }
        if (!live) {
            ok = false;
            sb_fail(c, "not starved: step %u, cgroup `%s`: no live worker", (unsigned)s->ptr[i].step, cgroup);
        }
        for (size_t j = 0; j < s->ptr[i].workers.len; j++) {
            const sb_worker_stat_t *w = &s->ptr[i].workers.ptr[j];
            if (!sb_str_eq(w->cgroup, cgroup) || !w->alive) continue;
            if (sb__units_in_step(s, i, w) == 0) {
                ok = false;
                sb_fail(c, "not starved: step %u, cgroup `%s`, worker %u: no work done in the step (%llu units in all)",
                        (unsigned)s->ptr[i].step, cgroup, (unsigned)w->tid, (unsigned long long)w->work_units);
            }
            if (w->max_gap_ns > max_gap_ns) {
                ok = false;
                sb_fail(c,
                        "not starved: step %u, cgroup `%s`, worker %u: a gap of %llu ns (bound %llu ns) ending on CPU "
                        "%u at %llu ns",
                        (unsigned)s->ptr[i].step, cgroup, (unsigned)w->tid, (unsigned long long)w->max_gap_ns,
                        (unsigned long long)max_gap_ns, (unsigned)w->max_gap_cpu, (unsigned long long)w->max_gap_at_ns);
            }
        }
    }
    return ok;
}

/* Fairness: in step `step`, the work units each live worker of `cgroup` did in
 * that step are within `max_ratio` of each other (most / fewest <= max_ratio). */
static inline bool sb_expect_fairness(sb_checker_t *c, const sb__steps_t *s, uint32_t step, const char *cgroup,
                                      double max_ratio) {
    long i = sb__step_index(s, step);
    if (i < 0) {
        sb_fail(c, "fairness: no metrics for step %u (%zu steps)", (unsigned)step, s->len);
        return false;
    }
    size_t n = 0;
    uint32_t lo_tid = 0, hi_tid = 0;
    uint64_t lo = 0, hi = 0;
    for (size_t j = 0; j < s->ptr[i].workers.len; j++) {
        const sb_worker_stat_t *w = &s->ptr[i].workers.ptr[j];
        if (!sb_str_eq(w->cgroup, cgroup) || !w->alive) continue;
        uint64_t u = sb__units_in_step(s, (size_t)i, w);
        /* The first fewest and the last most, as the Rust SDK picks them. */
        if (n == 0 || u < lo) lo = u, lo_tid = w->tid;
        if (n == 0 || u >= hi) hi = u, hi_tid = w->tid;
        n++;
    }
    if (n < 2) {
        sb_fail(c, "fairness: step %u, cgroup `%s`: %zu live worker(s), need at least 2 to compare", (unsigned)step,
                cgroup, n);
        return false;
    }
    double ratio = lo == 0 ? 1.0 / 0.0 : (double)hi / (double)lo;
    char r[64];
    sb__ratio_text(r, sizeof r, ratio);
    return sb_expect(c, ratio <= max_ratio,
                     "fairness: step %u, cgroup `%s`: worker %u did %llu units, worker %u %llu (ratio %s, bound %g)",
                     (unsigned)step, cgroup, (unsigned)hi_tid, (unsigned long long)hi, (unsigned)lo_tid,
                     (unsigned long long)lo, r, max_ratio);
}

static inline bool sb__rate(sb_checker_t *c, const sb__steps_t *s, const char *cgroup, uint32_t step, double *rate) {
    long i = sb__step_index(s, step);
    if (i < 0) {
        sb_fail(c, "phase ratio: no metrics for step %u (%zu steps)", (unsigned)step, s->len);
        return false;
    }
    size_t n = 0;
    uint64_t wall = 0, units = 0;
    for (size_t j = 0; j < s->ptr[i].workers.len; j++) {
        const sb_worker_stat_t *w = &s->ptr[i].workers.ptr[j];
        if (!sb_str_eq(w->cgroup, cgroup)) continue;
        n++;
        uint64_t x = sb__wall_in_step(s, (size_t)i, w);
        if (x > wall) wall = x;
        units += sb__units_in_step(s, (size_t)i, w);
    }
    if (n == 0 || wall == 0) {
        sb_fail(c, "phase ratio: step %u, cgroup `%s`: no workers to measure", (unsigned)step, cgroup);
        return false;
    }
    *rate = (double)units / ((double)wall / 1e9);
    return true;
}

/* Per-phase ratio: `cgroup`'s throughput (work units per second, summed over its
 * workers) in step `b` divided by that in step `a` lies in lo..=hi. */
static inline bool sb_expect_phase_ratio(sb_checker_t *c, const sb__steps_t *s, const char *cgroup, uint32_t a,
                                         uint32_t b, double lo, double hi) {
    double ra = 0, rb = 0;
    bool ok_a = sb__rate(c, s, cgroup, a, &ra);
    bool ok_b = sb__rate(c, s, cgroup, b, &rb);
    if (!ok_a || !ok_b) return false;
    double ratio = ra == 0 ? 1.0 / 0.0 : rb / ra;
    char r[64];
    sb__ratio_text(r, sizeof r, ratio);
    return sb_expect(c, ratio >= lo && ratio <= hi,
                     "phase ratio: cgroup `%s`: step %u did %.0f units/s, step %u %.0f units/s (ratio %s, want %g..=%g)",
                     cgroup, (unsigned)b, rb, (unsigned)a, ra, r, lo, hi);
}

/* Which latency `sb_expect_latency_bound` judges: `wake` or `request`. */
typedef enum { SB_LATENCY_WAKE, SB_LATENCY_REQUEST } sb_latency_kind_t;

static inline const sb_latency_t *sb__latency_of(const sb_latencies_t *l, uint32_t step, uint32_t tid,
                                                 sb_latency_kind_t kind) {
    for (size_t k = 0; k < l->len; k++) {
        const sb_worker_latency_t *x = &l->ptr[k];
        if (x->step != step || x->tid != tid) continue;
        if (kind == SB_LATENCY_WAKE) return x->wake.is_some ? &x->wake.val : NULL;
        return x->request.is_some ? &x->request.val : NULL;
    }
    return NULL;
}

/* Latency bound: in every step where `cgroup` lived, each of its live workers
 * measured `kind` latency during that step (its sample count grew since the previous
 * step's end) and its p99 (cumulative since the worker started) is at most
 * `max_p99_ns`. A worker with no such latency fails. */
static inline bool sb_expect_latency_bound(sb_checker_t *c, const sb__steps_t *s, const sb_latencies_t *l,
                                           const char *cgroup, sb_latency_kind_t kind, uint64_t max_p99_ns) {
    if (!sb__steps_with(c, s, cgroup, "latency bound")) return false;
    const char *what = kind == SB_LATENCY_WAKE ? "wake" : "request";
    bool ok = true;
    for (size_t i = 0; i < s->len; i++) {
        if (!sb_step_cgroup(&s->ptr[i], cgroup)) continue;
        unsigned step = (unsigned)s->ptr[i].step;
        size_t live = 0;
        for (size_t j = 0; j < s->ptr[i].workers.len; j++) {
            const sb_worker_stat_t *w = &s->ptr[i].workers.ptr[j];
            if (sb_str_eq(w->cgroup, cgroup) && w->alive) live++;
        }
        if (!live) {
            ok = false;
            sb_fail(c, "latency bound: step %u, cgroup `%s`: no live worker", step, cgroup);
        }
        for (size_t j = 0; j < s->ptr[i].workers.len; j++) {
            const sb_worker_stat_t *w = &s->ptr[i].workers.ptr[j];
            if (!sb_str_eq(w->cgroup, cgroup) || !w->alive) continue;
            const sb_latency_t *x = sb__latency_of(l, s->ptr[i].step, w->tid, kind);
            if (!x) {
                ok = false;
                sb_fail(c, "latency bound: step %u, cgroup `%s`, worker %u: no %s latency measured", step, cgroup,
                        (unsigned)w->tid, what);
                continue;
            }
            const sb_latency_t *p = i ? sb__latency_of(l, s->ptr[i - 1].step, w->tid, kind) : NULL;
            if (x->samples <= (p ? p->samples : 0)) {
                ok = false;
                sb_fail(c, "latency bound: step %u, cgroup `%s`, worker %u: no %s latency samples in the step (%llu in all)",
                        step, cgroup, (unsigned)w->tid, what, (unsigned long long)x->samples);
            }
            if (x->p99_ns > max_p99_ns) {
                ok = false;
                sb_fail(c,
                        "latency bound: step %u, cgroup `%s`, worker %u: %s p99 %llu ns (bound %llu ns; p50 %llu ns, "
                        "p90 %llu ns, max %llu ns, %llu samples since it started)",
                        step, cgroup, (unsigned)w->tid, what, (unsigned long long)x->p99_ns,
                        (unsigned long long)max_p99_ns, (unsigned long long)x->p50_ns, (unsigned long long)x->p90_ns,
                        (unsigned long long)x->max_ns, (unsigned long long)x->samples);
            }
        }
    }
    return ok;
}

/* Scheduler stayed attached: at the end of every step in first..=last, sched_ext
 * is `enabled` and, when `ops` is not NULL, `root/ops` names it. */
static inline bool sb_expect_scheduler_attached(sb_checker_t *c, const sb__steps_t *s, uint32_t first, uint32_t last,
                                                const char *ops) {
    bool ok = true;
    for (uint32_t step = first; step <= last; step++) {
        long i = sb__step_index(s, step);
        if (i < 0) {
            sb_fail(c, "scheduler attached: no metrics for step %u (%zu steps)", (unsigned)step, s->len);
            ok = false;
            continue;
        }
        const sb_step_metrics_t *m = &s->ptr[i];
        if (!sb_str_eq(m->sched_ext_state, "enabled") || (ops && !sb_str_eq(m->sched_ext_ops, ops))) {
            ok = false;
            char want[256];
            if (ops)
                snprintf(want, sizeof want, ", want enabled with \"%s\"", ops);
            else
                snprintf(want, sizeof want, ", want enabled");
            sb_fail(c, "scheduler attached: step %u: sched_ext \"%.*s\" with ops \"%.*s\"%s", (unsigned)step,
                    (int)m->sched_ext_state.len, (const char *)m->sched_ext_state.ptr, (int)m->sched_ext_ops.len,
                    (const char *)m->sched_ext_ops.ptr, want);
        }
        if (step == UINT32_MAX) break;
    }
    return ok;
}

/* Pass if nothing failed, otherwise fail with every message (moved into `ret`). */
static inline void sb__checker_into(sb_checker_t *c, scenario_verdict_t *ret) {
    ret->outcome = c->len ? SCHEDBOX_SCENARIO_TYPES_OUTCOME_FAIL : SCHEDBOX_SCENARIO_TYPES_OUTCOME_PASS;
    ret->messages = (scenario_list_string_t){c->len ? c->failures : NULL, c->len};
    if (!c->len) free(c->failures);
    c->failures = NULL;
    c->len = c->cap = 0;
}

/* ------------------------------------------------------------------------ */
/* The exports.                                                              */

/* Define the world's exports from three functions:
 *   sb_info_t DESCRIBE(void);
 *   bool RUN(sb_string_t *err);                 // usually `return SB_EMIT(err, ...);`
 *   void CHECK(const sb_results_t *r, sb_checker_t *c);
 * A `check` that records nothing passes. */
#define SB_EXPORT_SCENARIO(DESCRIBE, RUN, CHECK)                                       \
    void exports_scenario_describe(scenario_scenario_info_t *ret) {                    \
        sb_info_t info = DESCRIBE();                                                   \
        sb__info_into(&info, ret);                                                     \
    }                                                                                  \
    bool exports_scenario_run(scenario_string_t *err) { return RUN(err); }            \
    void exports_scenario_check(scenario_results_t *results, scenario_verdict_t *ret) { \
        sb_checker_t c = {NULL, 0, 0};                                                 \
        CHECK(results, &c);                                                            \
        sb__checker_into(&c, ret);                                                     \
        scenario_results_free(results);                                                \
    }

#ifdef __cplusplus
}
#endif

#endif /* SCHEDBOX_H */
