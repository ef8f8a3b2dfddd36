// SPDX-License-Identifier: GPL-2.0
/*
 * scx_fifo: the schedbox fixture scheduler. One global FIFO: every task
 * enqueued by sched_ext goes to a shared dispatch queue, and each CPU takes
 * the oldest one from it when it needs work.
 *
 * It declares the few kernel types it uses itself instead of including a
 * generated vmlinux.h. libbpf matches the struct_ops members by name against
 * the running kernel's BTF, so `struct sched_ext_ops` here is a subset of the
 * kernel's; `struct scx_exit_info` is read through CO-RE (preserve_access_index).
 *
 * The loader (src/main.rs) sets before load:
 *   - fifo_ops.name and fifo_ops.timeout_ms (the ops name the kernel reports in
 *     /sys/kernel/sched_ext/root/ops, and the watchdog timeout);
 *   - cfg (in .data): stop dispatching after stall_after_ns (the watchdog then
 *     ejects the scheduler), or exit with an error after exit_after_ns.
 * It reads .bss: counters, and what the kernel passed to ops.exit.
 *
 * Built twice (build.rs): scx_fifo.bpf.o, the fixture; and, with -DSCHEDBOX_PLANTED,
 * scx_planted.bpf.o, the fixture with a planted bug for `schedbox fuzz` to find (the
 * loader's --planted). The planted variant remembers each task's CPU count (task
 * storage, from ops.init_task/ops.enable/ops.set_cpumask) and calls scx_bpf_error when
 * ops.set_cpumask narrows the cpumask of a task that sits in the cgroup freezer's trap
 * (JOBCTL_TRAP_FREEZE): a cpuset shrunk or an affinity narrowed while the task's cgroup
 * is frozen. Shrinking first and freezing after, or freezing and widening, do not
 * trigger it; nor does anything on a task that is not SCHED_EXT. The plain object has
 * none of this code.
 *
 * CONFIG_HZ is a __kconfig extern, as in the scx schedulers: libbpf resolves it from
 * /boot/config-$(uname -r) (or /proc/config.gz) at load, so the fixture fails to load
 * ("failed to open system Kconfig") in a guest without the kernel config.
 */

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef __u8 u8;
typedef __u32 u32;
typedef __u64 u64;
typedef __s32 s32;
typedef __s64 s64;
typedef _Bool bool;
#define true 1
#define false 0

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char _license[] SEC("license") = "GPL";

/* A struct, not a forward declaration: libbpf checks kfunc prototypes against the
 * kernel's, and a forward declaration does not match a struct. */
struct task_struct {
	int pid;
	unsigned long jobctl;
	int nr_cpus_allowed;
} __attribute__((preserve_access_index));

struct cpumask;
struct scx_init_task_args;

enum scx_exit_kind {
	SCX_EXIT_NONE = 0,
};

struct scx_exit_info {
	enum scx_exit_kind kind;
	s64 exit_code;
	const char *reason;
	char *msg;
} __attribute__((preserve_access_index));

struct sched_ext_ops {
	s32 (*select_cpu)(struct task_struct *p, s32 prev_cpu, u64 wake_flags);
	void (*enqueue)(struct task_struct *p, u64 enq_flags);
	void (*dispatch)(s32 cpu, struct task_struct *prev);
	s32 (*init)(void);
	void (*exit)(struct scx_exit_info *ei);
	u64 flags;
	u32 timeout_ms;
	char name[128];
	/* After name: the loader's offsets of timeout_ms and name stay those above. */
	void (*set_cpumask)(struct task_struct *p, const struct cpumask *cpumask);
	s32 (*init_task)(struct task_struct *p, struct scx_init_task_args *args);
	void (*enable)(struct task_struct *p);
};

/* The kernel's constants (enum scx_dsq_id_flags, SCX_SLICE_DFL, scx_ops_flags). */
#define SCX_DSQ_LOCAL 0x8000000000000002ULL
#define SCX_SLICE_DFL 20000000ULL
#define SCX_OPS_SWITCH_PARTIAL 8ULL

/* Our own dispatch queue's id. */
#define SHARED_DSQ 0

s32 scx_bpf_create_dsq(u64 dsq_id, s32 node) __ksym;
void scx_bpf_dsq_insert(struct task_struct *p, u64 dsq_id, u64 slice, u64 enq_flags) __ksym;
bool scx_bpf_dsq_move_to_local(u64 dsq_id) __ksym;
s32 scx_bpf_select_cpu_dfl(struct task_struct *p, s32 prev_cpu, u64 wake_flags, bool *is_idle) __ksym;
void scx_bpf_error_bstr(char *fmt, unsigned long long *data, u32 data__sz) __ksym;

extern int CONFIG_HZ __kconfig;

/* Set by the loader before load; the only variable in .data (it reads offset 0). */
struct fifo_cfg {
	u64 magic;
	u64 stall_after_ns;
	u64 exit_after_ns;
};
volatile struct fifo_cfg cfg = { .magic = 0x5343584649464f31ULL };

/* Read by the loader at offset 0 of the map `scx_fifo.bss` (the kernel keeps 8
 * characters of the object name); the layout is mirrored in src/main.rs. */
struct fifo_stats {
	u64 nr_enqueued;
	u64 nr_dispatched;
	u64 start_ns;
	s64 exit_code;
	s32 exit_kind;
	s32 hz; /* CONFIG_HZ, from the kernel config */
	char exit_reason[128];
	char exit_msg[256];
};
struct fifo_stats stats;

/* Writable memory (the kfunc takes `char *`), in a section of its own so that cfg stays
 * alone in .data. */
static char exit_fmt[] SEC(".data.fmt") = "schedbox fixture: --exit-after elapsed";

static __always_inline bool elapsed(u64 after_ns)
{
	return after_ns && bpf_ktime_get_ns() - stats.start_ns >= after_ns;
}

SEC("struct_ops/fifo_select_cpu")
s32 BPF_PROG(fifo_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	bool is_idle = false;
	s32 cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);

	/* An idle CPU takes the task at once, unless we are asked to stall. */
	if (is_idle && !elapsed(cfg.stall_after_ns)) {
		__sync_fetch_and_add(&stats.nr_dispatched, 1);
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, SCX_SLICE_DFL, 0);
	}
	return cpu;
}

SEC("struct_ops/fifo_enqueue")
void BPF_PROG(fifo_enqueue, struct task_struct *p, u64 enq_flags)
{
	__sync_fetch_and_add(&stats.nr_enqueued, 1);
	scx_bpf_dsq_insert(p, SHARED_DSQ, SCX_SLICE_DFL, enq_flags);
}

SEC("struct_ops/fifo_dispatch")
void BPF_PROG(fifo_dispatch, s32 cpu, struct task_struct *prev)
{
	if (elapsed(cfg.exit_after_ns)) {
		unsigned long long none[1] = {};

		scx_bpf_error_bstr(exit_fmt, none, sizeof(none));
		return;
	}
	if (elapsed(cfg.stall_after_ns))
		return;
	if (scx_bpf_dsq_move_to_local(SHARED_DSQ))
		__sync_fetch_and_add(&stats.nr_dispatched, 1);
}

SEC("struct_ops.s/fifo_init")
s32 BPF_PROG(fifo_init)
{
	stats.start_ns = bpf_ktime_get_ns();
	stats.hz = CONFIG_HZ;
	return scx_bpf_create_dsq(SHARED_DSQ, -1);
}

SEC("struct_ops/fifo_exit")
void BPF_PROG(fifo_exit, struct scx_exit_info *ei)
{
	stats.exit_code = ei->exit_code;
	bpf_probe_read_kernel_str(stats.exit_reason, sizeof(stats.exit_reason), ei->reason);
	bpf_probe_read_kernel_str(stats.exit_msg, sizeof(stats.exit_msg), ei->msg);
	/* Last: the loader polls exit_kind and then reads the rest. */
	asm volatile("" ::: "memory");
	stats.exit_kind = ei->kind;
}

#ifdef SCHEDBOX_PLANTED
/* The uapi constants (enum bpf_map_type, map flags, local-storage flags) and the
 * cgroup freezer's trap bit (include/linux/sched/jobctl.h). */
#define BPF_MAP_TYPE_TASK_STORAGE 29
#define BPF_F_NO_PREALLOC 1U
#define BPF_LOCAL_STORAGE_GET_F_CREATE 1ULL
#define JOBCTL_TRAP_FREEZE (1UL << 23)

struct planted_task {
	s32 nr_cpus; /* the task's CPU count as the scheduler last saw it */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct planted_task);
} planted_tasks SEC(".maps");

static char planted_fmt[] SEC(".data.fmt") =
	"schedbox fixture-planted: cpumask of frozen task %d shrank from %d to %d CPUs";

SEC("struct_ops/fifo_init_task")
s32 BPF_PROG(fifo_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	struct planted_task *t = bpf_task_storage_get(&planted_tasks, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (t)
		t->nr_cpus = p->nr_cpus_allowed;
	return 0;
}

SEC("struct_ops/fifo_enable")
void BPF_PROG(fifo_enable, struct task_struct *p)
{
	struct planted_task *t = bpf_task_storage_get(&planted_tasks, p, 0, 0);

	if (t)
		t->nr_cpus = p->nr_cpus_allowed;
}

/* The planted bug. */
SEC("struct_ops/fifo_set_cpumask")
void BPF_PROG(fifo_set_cpumask, struct task_struct *p, const struct cpumask *cpumask)
{
	struct planted_task *t = bpf_task_storage_get(&planted_tasks, p, 0, 0);
	s32 now = p->nr_cpus_allowed;

	if (!t)
		return;
	if (now < t->nr_cpus && (p->jobctl & JOBCTL_TRAP_FREEZE)) {
		unsigned long long data[3] = { p->pid, t->nr_cpus, now };

		scx_bpf_error_bstr(planted_fmt, data, sizeof(data));
	}
	t->nr_cpus = now;
}
#endif

SEC(".struct_ops.link")
struct sched_ext_ops fifo_ops = {
	.select_cpu = (void *)fifo_select_cpu,
	.enqueue = (void *)fifo_enqueue,
	.dispatch = (void *)fifo_dispatch,
#ifdef SCHEDBOX_PLANTED
	.set_cpumask = (void *)fifo_set_cpumask,
	.init_task = (void *)fifo_init_task,
	.enable = (void *)fifo_enable,
#endif
	.init = (void *)fifo_init,
	.exit = (void *)fifo_exit,
	/* Only tasks that ask for SCHED_EXT run here: the guest agent stays on CFS/EEVDF. */
	.flags = SCX_OPS_SWITCH_PARTIAL,
	.timeout_ms = 0,
	.name = "fixture",
};
