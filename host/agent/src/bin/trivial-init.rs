//! The smallest init: power off at once. The boot benchmark boots it with the
//! same QEMU command as the agent to measure what the agent's set-up costs.

fn main() {
    // SAFETY: reboot(2) with RB_POWER_OFF has no memory-safety preconditions;
    // as PID 1 we hold CAP_SYS_BOOT. It does not return on success.
    unsafe { libc::reboot(libc::RB_POWER_OFF) };
}
