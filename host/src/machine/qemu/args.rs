//! The QEMU command line for a boot spec: machine type, topology, memory
//! backend, console, agent channel and QMP. Pure, so it is unit-tested.

use std::path::{Path, PathBuf};

use crate::machine::BootSpec;

/// Scratch paths of one VM.
#[derive(Clone, Debug)]
pub struct VmPaths {
    pub qmp: PathBuf,
    pub agent: PathBuf,
    /// QEMU's gdbstub (registers, hardware watchpoints).
    pub gdb: PathBuf,
    /// One RAM file per NUMA node.
    pub ram: Vec<PathBuf>,
}

impl VmPaths {
    pub fn new(dir: &Path, ram_dir: &Path, nodes: u32) -> Self {
        Self {
            qmp: dir.join("qmp.sock"),
            agent: dir.join("agent.sock"),
            gdb: dir.join("gdb.sock"),
            ram: (0..nodes).map(|n| ram_dir.join(format!("ram-node{n}"))).collect(),
        }
    }
}

/// The kernel command line every schedbox guest boots with.
pub fn kernel_cmdline(spec: &BootSpec, tsc_khz: u64) -> String {
    let mut c = vec![
        "console=ttyS0".to_owned(),
        "quiet".into(),
        "loglevel=4".into(),
        // A panic reboots, and -no-reboot turns that into QEMU exiting.
        "panic=-1".into(),
        "reboot=t".into(),
        "rdinit=/init".into(),
        // Under TCG the guest cannot calibrate the TSC (microvm hangs without this).
        format!("tsc_early_khz={tsc_khz}"),
        // Slow, irrelevant initcalls under TCG (certificate parsing, crypto self-tests).
        "initcall_blacklist=load_system_certificate_list,init_encrypted,crypto_kdf108_init,cec_init".into(),
        "cryptomgr.notests=1".into(),
        "schedbox.channel=auto".into(),
    ];
    if !spec.extra_cmdline.is_empty() {
        c.push(spec.extra_cmdline.clone());
    }
    c.join(" ")
}

/// Whether the spec needs q35 (NUMA needs ACPI SRAT, which microvm lacks).
pub fn needs_q35(spec: &BootSpec) -> bool {
    spec.topology.numa_nodes > 1 || spec.prefer_q35
}

/// Environment variable choosing QEMU's TCG threading: `single` (one host thread runs
/// every vCPU) or `multi` (MTTCG: one host thread per vCPU).
pub const TCG_THREADS_ENV: &str = "SCHEDBOX_TCG_THREADS";

/// The TCG threading for `setting` ([`TCG_THREADS_ENV`]'s value): `single` by default;
/// `multi` only when asked for (the guest kernel oopsed with `int3` in `__schedule` across
/// sched_ext enable/disable under MTTCG here, and MTTCG was not faster under load), and
/// never on a one-CPU host. An unknown value is ignored with a warning naming the
/// variable and the values it takes.
pub fn tcg_threads(setting: Option<&str>, host_cpus: usize) -> &'static str {
    match setting.map(str::trim) {
        Some("single") => "single",
        Some("multi") if host_cpus > 1 => "multi",
        Some("multi") => "single",
        Some(other) if !other.is_empty() => {
            tracing::warn!("{TCG_THREADS_ENV}={other:?} is neither `single` nor `multi`: using the default");
            tcg_threads(None, host_cpus)
        }
        _ => "single",
    }
}

/// The full argument list (without the program name).
pub fn qemu_args(spec: &BootSpec, paths: &VmPaths, tsc_khz: u64) -> Vec<String> {
    let t = &spec.topology;
    let cpus = t.vcpus();
    let q35 = needs_q35(spec);
    let nodes = u64::from(t.numa_nodes);
    // Memory split evenly across nodes, rounded down to 2 MiB.
    let per_node = (spec.memory_mib / nodes) & !1;
    let mut a: Vec<String> = Vec::new();
    let mut push = |s: &[&str]| a.extend(s.iter().map(|x| x.to_string()));
    push(&["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]);
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = tcg_threads(std::env::var(TCG_THREADS_ENV).ok().as_deref(), host_cpus);
    push(&["-accel", &format!("tcg,thread={threads}")]);
    if q35 {
        // Intel vendor: Linux derives LLC groups from dies there.
        push(&["-machine", "q35", "-cpu", "max,vendor=GenuineIntel"]);
        let smp = format!(
            "cpus={cpus},sockets={},dies={},cores={},threads={}",
            t.numa_nodes, t.llcs_per_node, t.cores_per_llc, t.threads_per_core
        );
        push(&["-smp", &smp]);
    } else {
        // microvm: one socket per LLC is the way to get separate L3 groups.
        push(&["-machine", "microvm,pit=on,pic=on,rtc=on,memory-backend=ram0", "-cpu", "max"]);
        let smp =
            format!("cpus={cpus},sockets={},cores={},threads={}", t.llcs_per_node, t.cores_per_llc, t.threads_per_core);
        push(&["-smp", &smp]);
    }
    push(&["-m", &format!("{}M", per_node * nodes)]);
    let per_node_cpus = cpus / nodes;
    for (n, ram) in paths.ram.iter().enumerate() {
        let obj = format!("memory-backend-file,id=ram{n},size={per_node}M,mem-path={},share=on", ram.display());
        push(&["-object", &obj]);
        if q35 {
            let first = n as u64 * per_node_cpus;
            let node = format!("node,nodeid={n},cpus={first}-{},memdev=ram{n}", first + per_node_cpus - 1);
            push(&["-numa", &node]);
        }
    }
    push(&["-kernel", &spec.vmlinux.display().to_string()]);
    push(&["-initrd", &spec.initramfs.display().to_string()]);
    push(&["-append", &kernel_cmdline(spec, tsc_khz)]);
    push(&["-serial", "stdio"]);
    push(&["-qmp", &format!("unix:{},server=on,wait=off", paths.qmp.display())]);
    push(&["-chardev", &format!("socket,id=agent,path={},server=on,wait=off", paths.agent.display())]);
    push(&["-chardev", &format!("socket,id=gdb,path={},server=on,wait=off", paths.gdb.display())]);
    push(&["-gdb", "chardev:gdb"]);
    if q35 {
        push(&["-device", "virtio-serial-pci,id=vser"]);
    } else {
        push(&["-device", "virtio-serial-device,id=vser"]);
    }
    push(&["-device", "virtserialport,bus=vser.0,chardev=agent,name=schedbox"]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::op_model::Topology;

    fn spec(nodes: u32, llcs: u32) -> BootSpec {
        let t = Topology { numa_nodes: nodes, llcs_per_node: llcs, cores_per_llc: 2, threads_per_core: 1 };
        BootSpec::new("vmlinux".into(), "initrd.cpio".into(), t)
    }

    fn find<'a>(a: &'a [String], flag: &str) -> Vec<&'a str> {
        a.windows(2).filter(|w| w[0] == flag).map(|w| w[1].as_str()).collect()
    }

    #[test]
    fn one_node_uses_microvm_with_a_socket_per_llc() {
        let s = spec(1, 2);
        let p = VmPaths::new(Path::new("/run/x"), Path::new("/dev/shm"), 1);
        let a = qemu_args(&s, &p, 2_600_000);
        assert!(find(&a, "-machine")[0].starts_with("microvm,pit=on,pic=on,rtc=on"));
        assert_eq!(find(&a, "-smp"), ["cpus=4,sockets=2,cores=2,threads=1"]);
        assert!(find(&a, "-numa").is_empty());
        assert!(find(&a, "-append")[0].contains("tsc_early_khz=2600000"));
        assert!(find(&a, "-device").contains(&"virtio-serial-device,id=vser"));
    }

    #[test]
    fn tcg_threading_is_single_unless_multi_is_asked_for() {
        assert_eq!(tcg_threads(None, 2), "single");
        assert_eq!(tcg_threads(None, 1), "single");
        assert_eq!(tcg_threads(Some("single"), 16), "single");
        assert_eq!(tcg_threads(Some("multi"), 1), "single");
        assert_eq!(tcg_threads(Some("multi"), 2), "multi");
        assert_eq!(tcg_threads(Some("bogus"), 2), "single");
        assert_eq!(tcg_threads(Some(""), 1), "single");
    }

    #[test]
    fn two_nodes_use_q35_with_memdev_per_node() {
        let s = spec(2, 1);
        let p = VmPaths::new(Path::new("/run/x"), Path::new("/dev/shm"), 2);
        let a = qemu_args(&s, &p, 1);
        assert_eq!(find(&a, "-machine"), ["q35"]);
        assert_eq!(find(&a, "-smp"), ["cpus=4,sockets=2,dies=1,cores=2,threads=1"]);
        assert_eq!(find(&a, "-numa"), ["node,nodeid=0,cpus=0-1,memdev=ram0", "node,nodeid=1,cpus=2-3,memdev=ram1"]);
        assert_eq!(find(&a, "-m"), ["1024M"]);
        assert!(find(&a, "-object").iter().all(|o| o.contains("size=512M") && o.contains("share=on")));
    }
}
