//! `task-field` targets: find the `task_struct` of a pid by walking
//! `init_task.tasks` and each process's `signal->thread_head`, prove it is the
//! task the scenario means (`start_time`), apply the reference's safety gates,
//! then add the BTF offset of the (nested) field.
//!
//! The gates, in order: pid match; `start_time` identity (anti PID reuse);
//! alive (`exit_state == 0`, not `PF_EXITING`); not on a runqueue (`on_rq ==
//! 0`); not queued on a sched_ext DSQ (`scx.dsq == NULL`, `scx.runnable_node`
//! empty); on the sched_ext class (`sched_class == &ext_sched_class`);
//! `start_boottime != 0`. A target that fails one is refused, never written.

use super::{Monitor, Resolved};
use crate::machine::Machine;

/// `task->flags` bit of a task that is exiting.
const PF_EXITING: u64 = 0x4;
/// Bound on the tasks and threads visited (a list changing under a hot walk
/// must not loop forever).
const MAX_TASKS: usize = 1 << 16;
/// `/proc/<pid>/stat` gives start times in clock ticks (USER_HZ = 100 on
/// x86), so an identity given from there is compared at this granularity.
const TICK_NS: u64 = 10_000_000;

/// A field's byte offset and size (read at its own width: `on_rq` is a `u8`
/// in recent kernels, an `int` in older ones).
type Field = (u64, usize);

/// Where the walk and the gates read.
struct TaskLayout {
    tasks: u64,
    pid: Field,
    signal: u64,
    thread_node: u64,
    thread_head: u64,
    start_time: Field,
    start_boottime: Field,
    exit_state: Field,
    flags: Field,
    on_rq: Field,
    sched_class: u64,
    scx_dsq: u64,
    scx_runnable_node: u64,
}

/// Whether `observed` (`task->start_time`, ns) is the start time the scenario
/// recorded: exactly, or within the same clock tick when it came from procfs.
pub fn same_start(observed: u64, expected: u64) -> bool {
    observed == expected || observed / TICK_NS == expected / TICK_NS
}

impl Monitor {
    fn task_layout(&mut self) -> Result<TaskLayout, String> {
        let btf = self.btf()?;
        let t = |f: &str| btf.field("task_struct", f).map(|l| l.offset);
        let sized = |f: &str| -> Result<Field, String> {
            let l = btf.field("task_struct", f)?;
            match l.size {
                Some(n @ (1 | 2 | 4 | 8)) => Ok((l.offset, n as usize)),
                other => Err(format!("task_struct.{f} has size {other:?}, not an integer")),
            }
        };
        Ok(TaskLayout {
            tasks: t("tasks")?,
            pid: sized("pid")?,
            signal: t("signal")?,
            thread_node: t("thread_node")?,
            thread_head: btf.field("signal_struct", "thread_head")?.offset,
            start_time: sized("start_time")?,
            start_boottime: sized("start_boottime")?,
            exit_state: sized("exit_state")?,
            flags: sized("flags")?,
            on_rq: sized("on_rq")?,
            sched_class: t("sched_class")?,
            scx_dsq: t("scx.dsq")?,
            scx_runnable_node: t("scx.runnable_node")?,
        })
    }

    /// The integer `field` of the task at `task`.
    fn kfield(&mut self, m: &mut dyn Machine, task: u64, field: Field) -> Result<u64, String> {
        self.kread(m, task + field.0, field.1)
    }

    /// `n` (at most 8) little-endian bytes at kernel address `kva`.
    fn kread(&mut self, m: &mut dyn Machine, kva: u64, n: usize) -> Result<u64, String> {
        let gpa = self.pointer_gpa(m, kva)?;
        let mut b = [0u8; 8];
        m.guest_ram().read(gpa, &mut b[..n]).map_err(|e| format!("reading kva {kva:#x} (gpa {gpa:#x}): {e}"))?;
        Ok(u64::from_le_bytes(b))
    }

    /// The `task_struct` address of `pid` (leaders and threads).
    fn find_task(&mut self, m: &mut dyn Machine, l: &TaskLayout, pid: u32) -> Result<Option<u64>, String> {
        let init = self.symbol(m, "init_task")?;
        let head = init + l.tasks;
        let mut node = self.kread(m, head, 8)?;
        let mut visited = 0usize;
        while node != head {
            let leader = node - l.tasks;
            let signal = self.kread(m, leader + l.signal, 8)?;
            let thead = signal + l.thread_head;
            let mut tnode = self.kread(m, thead, 8)?;
            while tnode != thead {
                let task = tnode - l.thread_node;
                if self.kfield(m, task, l.pid)? as u32 == pid {
                    return Ok(Some(task));
                }
                tnode = self.kread(m, tnode, 8)?;
                visited += 1;
                if visited > MAX_TASKS {
                    return Err(format!("gave up after {MAX_TASKS} tasks (the task list changed under the walk?)"));
                }
            }
            node = self.kread(m, node, 8)?;
        }
        Ok(None)
    }

    /// Resolves a `task-field` target (see the module doc for the gates).
    pub(super) fn task_field(
        &mut self,
        m: &mut dyn Machine,
        pid: u32,
        expected_start_ns: u64,
        field: &str,
    ) -> Result<Resolved, String> {
        let what = format!("task-field pid {pid} field {field:?}");
        let err = |why: String| format!("{what}: {why}");
        let l = self.task_layout().map_err(err)?;
        let loc = self.btf().and_then(|b| b.field("task_struct", field)).map_err(err)?;
        let task = self
            .find_task(m, &l, pid)
            .map_err(err)?
            .ok_or_else(|| err("no such task in init_task.tasks or its thread lists (it exited?)".into()))?;
        let start = self.kfield(m, task, l.start_time).map_err(err)?;
        if !same_start(start, expected_start_ns) {
            return Err(err(format!(
                "start_time is {start} ns, not the expected {expected_start_ns} ns: the pid was reused by another task"
            )));
        }
        let exit_state = self.kfield(m, task, l.exit_state).map_err(err)?;
        let flags = self.kfield(m, task, l.flags).map_err(err)?;
        if exit_state != 0 || flags & PF_EXITING != 0 {
            return Err(err(format!("the task is exiting (exit_state {exit_state:#x}, flags {flags:#x})")));
        }
        let on_rq = self.kfield(m, task, l.on_rq).map_err(err)?;
        if on_rq != 0 {
            return Err(err(format!(
                "the task is on a runqueue (on_rq = {on_rq}); target a sleeping task (a blocking work type)"
            )));
        }
        let dsq = self.kread(m, task + l.scx_dsq, 8).map_err(err)?;
        let runnable = task + l.scx_runnable_node;
        let runnable_next = self.kread(m, runnable, 8).map_err(err)?;
        if dsq != 0 || runnable_next != runnable {
            return Err(err(format!(
                "the task is queued on a sched_ext DSQ (scx.dsq {dsq:#x}); target a sleeping task"
            )));
        }
        let class = self.kread(m, task + l.sched_class, 8).map_err(err)?;
        let ext = self.symbol(m, "ext_sched_class").map_err(err)?;
        if class != ext {
            return Err(err(format!(
                "the task is not on the sched_ext class (sched_class {class:#x}, ext_sched_class {ext:#x}); \
                 task-field targets SCHED_EXT tasks under an attached scheduler"
            )));
        }
        if self.kfield(m, task, l.start_boottime).map_err(err)? == 0 {
            return Err(err("start_boottime is 0 (the task is not fully set up)".into()));
        }
        let kva = task + loc.offset;
        let gpa = self.pointer_gpa(m, kva).map_err(err)?;
        Ok(Resolved::linear(kva, gpa).sized(what, loc.size))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn start_time_matches_exactly_or_within_a_procfs_tick() {
        assert!(super::same_start(1_234_567_891, 1_234_567_891));
        assert!(super::same_start(1_234_567_891, 1_230_000_000), "procfs ticks truncate");
        assert!(!super::same_start(1_244_567_891, 1_230_000_000));
    }
}
