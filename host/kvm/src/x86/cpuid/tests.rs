use super::*;

fn entry(function: u32, index: u32, eax: u32, ebx: u32, ecx: u32, edx: u32) -> kvm_cpuid_entry2 {
    kvm_cpuid_entry2 { function, index, eax, ebx, ecx, edx, ..Default::default() }
}

/// An AMD-like supported set (as KVM reports on an EPYC): caches in 0x8000001D.
fn amd() -> CpuId {
    CpuId::from_entries(&[
        entry(0, 0, 0x1c, 0, 0, 0),
        entry(1, 0, 0x00a1_0f11, 0x0002_0800, 0x8120_2000 | LEAF1_ECX_XSAVE | LEAF1_ECX_AVX, 0x078b_fbff),
        entry(7, 0, 1, LEAF7_EBX_AVX | 1, 0, 0),
        entry(0xb, 0, 0, 0, 0, 0),
        entry(0xd, 0, 0xe7, 0x980, 0x980, 0),
        entry(0x8000_0008, 0, 0x3030, 0, 0x7001, 0),
        entry(0x8000_001d, 0, 0x121, 0, 0, 0),
        entry(0x8000_001d, 1, 0x122, 0, 0, 0),
        entry(0x8000_001d, 2, 0x143, 0, 0, 0),
        entry(0x8000_001d, 3, 0x4163, 0, 0, 0),
        entry(0x8000_001e, 0, 0, 0, 0, 0),
    ])
    .unwrap()
}

/// An Intel-like set: caches in leaf 4.
fn intel() -> CpuId {
    CpuId::from_entries(&[
        entry(0, 0, 0x1f, 0, 0, 0),
        entry(1, 0, 0x906ea, 0, 0, 0),
        entry(4, 0, 0x121, 0, 0, 0),
        entry(4, 1, 0x122, 0, 0, 0),
        entry(4, 2, 0x143, 0, 0, 0),
        entry(4, 3, 0x163, 0, 0, 0),
        entry(4, 4, 0, 0, 0, 0),
        entry(0x1f, 0, 0, 0, 0, 0),
    ])
    .unwrap()
}

fn get(c: &CpuId, function: u32, index: u32) -> kvm_cpuid_entry2 {
    *c.as_slice()
        .iter()
        .find(|e| e.function == function && e.index == index)
        .unwrap_or_else(|| panic!("no leaf {function:#x}.{index}"))
}

/// 1 node, 2 LLCs of 2 cores, 1 thread: 4 CPUs, APIC IDs 0–3, LLC = APIC ID >> 1.
const TWO_LLC: CpuShape =
    CpuShape { nodes: 1, llcs_per_node: 2, cores_per_llc: 2, threads_per_core: 1, min_llc_bits: 0 };

#[test]
fn apic_ids_pad_each_level_to_a_power_of_two() {
    assert_eq!((0..4).map(|c| TWO_LLC.apic_id(c)).collect::<Vec<_>>(), vec![0, 1, 2, 3]);
    let odd = CpuShape { nodes: 2, llcs_per_node: 1, cores_per_llc: 3, threads_per_core: 2, min_llc_bits: 0 };
    // 2 thread values (1 bit), 3 cores (2 bits): LLC 1 starts at APIC ID 8.
    assert_eq!((0..12).map(|c| odd.apic_id(c)).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13]);
    assert_eq!((0..12).map(|c| odd.node_of(c)).collect::<Vec<_>>(), [[0; 6], [1; 6]].concat());
}

#[test]
fn two_llc_shape_on_amd_shares_l3_by_pairs() {
    for cpu in 0..4 {
        let c = cpuid_for(&amd(), &TWO_LLC, cpu, CpuidOptions::default()).unwrap();
        assert_eq!(get(&c, 1, 0).ebx >> 24, cpu, "initial APIC ID");
        assert_eq!(get(&c, 1, 0).ebx >> 16 & 0xff, 4, "logical CPUs per package");
        // L3 (subleaf 3): 2 CPUs share it, so the guest computes LLC = APIC ID >> 1.
        assert_eq!(get(&c, 0x8000_001d, 3).eax >> 14 & 0xfff, 1);
        assert_eq!(get(&c, 0x8000_001d, 3).eax & 0x3fff, 0x0163, "cache type and level kept");
        assert_eq!(get(&c, 0x8000_001d, 0).eax >> 14 & 0xfff, 0, "L1 private");
        let (smt, pkg) = (get(&c, 0xb, 0), get(&c, 0xb, 1));
        assert_eq!((smt.eax, smt.ebx, smt.ecx >> 8 & 0xff, smt.edx), (0, 1, 1, cpu));
        assert_eq!((pkg.eax, pkg.ebx, pkg.ecx >> 8 & 0xff), (2, 4, 2));
        assert_eq!(get(&c, 0xb, 2).ecx >> 8 & 0xff, 0, "level list ends");
        assert_eq!(get(&c, 0x8000_0008, 0).ecx & 0xf0ff, (2 << 12) | 3);
        let topo = get(&c, 0x8000_001e, 0);
        assert_eq!((topo.eax, topo.ebx & 0xff, topo.ecx & 0x7ff), (cpu, cpu, 0));
    }
}

#[test]
fn two_llc_shape_on_intel_fills_leaf_4_and_1f() {
    let c = cpuid_for(&intel(), &TWO_LLC, 3, CpuidOptions::default()).unwrap();
    assert_eq!(get(&c, 4, 3).eax >> 14 & 0xfff, 1, "L3 shared by 2");
    assert_eq!(get(&c, 4, 3).eax >> 26, 3, "4 cores per package");
    assert_eq!(get(&c, 4, 0).eax >> 14 & 0xfff, 0, "L1 private");
    assert_eq!(get(&c, 4, 4).eax, 0, "terminator untouched");
    assert_eq!((get(&c, 0x1f, 1).eax, get(&c, 0x1f, 1).edx), (2, 3));
}

#[test]
fn xsave_avx_and_cx16_can_be_hidden() {
    let opts = CpuidOptions { hide_xsave: true, hide_cx16: true };
    let c = cpuid_for(&amd(), &TWO_LLC, 0, opts).unwrap();
    let ecx = get(&c, 1, 0).ecx;
    assert_eq!(ecx & (LEAF1_ECX_XSAVE | LEAF1_ECX_AVX | LEAF1_ECX_CX16), 0);
    assert_ne!(ecx & LEAF1_ECX_HYPERVISOR, 0);
    assert_eq!(get(&c, 7, 0).ebx, 1, "AVX2/AVX-512 gone, other leaf 7 bits kept");
    assert!(c.as_slice().iter().all(|e| e.function != 0xd), "leaf 0xD dropped");
    let kept = cpuid_for(&amd(), &TWO_LLC, 0, CpuidOptions::default()).unwrap();
    assert_ne!(get(&kept, 1, 0).ecx & LEAF1_ECX_XSAVE, 0);
}

#[test]
fn bad_shapes_are_refused() {
    let empty = CpuShape { nodes: 1, llcs_per_node: 0, cores_per_llc: 1, threads_per_core: 1, min_llc_bits: 0 };
    assert!(cpuid_for(&amd(), &empty, 0, CpuidOptions::default()).is_err());
    let huge = CpuShape { nodes: 4, llcs_per_node: 8, cores_per_llc: 16, threads_per_core: 2, min_llc_bits: 0 };
    assert!(huge.validate().is_err());
}

/// QEMU's `EPYC` model under TCG, as KVM in such a guest reports it: family 17h
/// model 1 (Zen 1), no TOPOEXT and no 0x8000001D.
fn epyc_without_topoext() -> CpuId {
    let (b, d, c) = AMD_VENDOR;
    CpuId::from_entries(&[
        entry(0, 0, 0xd, b, c, d),
        entry(1, 0, 0x0080_0f12, 0, 0, 0),
        entry(0x8000_0000, 0, 0x8000_000a, b, c, d),
        entry(0x8000_0001, 0, 0, 0, 0, 0),
        entry(0x8000_0008, 0, 0x3030, 0, 0, 0),
    ])
    .unwrap()
}

#[test]
fn zen1_places_the_llc_at_apic_id_bit_3() {
    assert_eq!(llc_align_bits(&epyc_without_topoext()), 3);
    let mut zen2 = epyc_without_topoext().as_slice().to_vec();
    zen2[1].eax = 0x0083_0f10; // family 17h model 0x31
    assert_eq!(llc_align_bits(&CpuId::from_entries(&zen2).unwrap()), 0);
    assert_eq!(llc_align_bits(&intel()), 0, "no vendor string: not AMD");
    let shape = CpuShape { min_llc_bits: 3, ..TWO_LLC };
    assert_eq!((0..4).map(|c| shape.apic_id(c)).collect::<Vec<_>>(), vec![0, 1, 8, 9]);
}

#[test]
fn amd_without_cache_leaves_gets_topoext_and_an_llc_per_shape() {
    let supported = epyc_without_topoext();
    let shape = CpuShape { min_llc_bits: llc_align_bits(&supported), ..TWO_LLC };
    let c = cpuid_for(&supported, &shape, 2, CpuidOptions::default()).unwrap();
    assert_ne!(get(&c, 0x8000_0001, 0).ecx & EXT1_ECX_TOPOEXT, 0, "Linux reads 0x8000001D only with TOPOEXT");
    assert!(get(&c, 0x8000_0000, 0).eax >= 0x8000_001e);
    let levels: Vec<u32> = (0..4).map(|i| (get(&c, 0x8000_001d, i).eax >> 5) & 7).collect();
    assert_eq!(levels, vec![1, 1, 2, 3]);
    assert_eq!(get(&c, 0x8000_001d, 4).eax & 0x1f, 0, "the list ends with a null cache");
    // L3 shared by the 8 APIC IDs of one LLC (bits 14–25 hold the count − 1); L1 and L2 per core.
    assert_eq!((get(&c, 0x8000_001d, 3).eax >> 14) & 0xfff, 7);
    assert_eq!((get(&c, 0x8000_001d, 2).eax >> 14) & 0xfff, 0);
    let l3 = get(&c, 0x8000_001d, 3);
    let bytes = ((l3.ebx & 0xfff) + 1) * ((l3.ebx >> 22) + 1) * (l3.ecx + 1);
    assert_eq!(bytes, 8 << 20);
    assert_eq!(get(&c, 0x8000_001e, 0).eax, 8, "CPU 2's APIC ID");
}
