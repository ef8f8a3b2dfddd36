//! x86-64 page-table walks over guest physical memory: 4-level (PML4) and
//! 5-level (LA57) paging, 1 GiB and 2 MiB pages. Pure over [`PhysMem`], so the
//! walker is tested here on hand-built tables and benchmarked on a live guest's.

use std::fmt;

/// Physical address bits of a paging entry (bits 12..=51).
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const PRESENT: u64 = 1;
/// Page size bit: the entry maps a 1 GiB (PDPT) or 2 MiB (PD) page.
const PAGE_SIZE_BIT: u64 = 1 << 7;
/// CR4.LA57: 5-level paging.
pub const CR4_LA57: u64 = 1 << 12;

/// Guest physical memory as the walker reads it.
pub trait PhysMem {
    /// The little-endian u64 at guest physical address `gpa`.
    fn read_u64(&self, gpa: u64) -> Result<u64, String>;
}

impl PhysMem for crate::machine::GuestRam {
    fn read_u64(&self, gpa: u64) -> Result<u64, String> {
        let mut b = [0u8; 8];
        self.read(gpa, &mut b).map_err(|e| e.to_string())?;
        Ok(u64::from_le_bytes(b))
    }
}

/// One level of the paging hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Pml5,
    Pml4,
    Pdpt,
    Pd,
    Pt,
}

impl Level {
    /// The lowest address bit this level's index selects.
    fn shift(self) -> u32 {
        match self {
            Level::Pml5 => 48,
            Level::Pml4 => 39,
            Level::Pdpt => 30,
            Level::Pd => 21,
            Level::Pt => 12,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Pml5 => "PML5 (level 5)",
            Level::Pml4 => "PML4 (level 4)",
            Level::Pdpt => "PDPT (level 3)",
            Level::Pd => "PD (level 2)",
            Level::Pt => "PT (level 1)",
        })
    }
}

/// Where a virtual address lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    pub gpa: u64,
    /// Size of the page that maps it: 4 KiB, 2 MiB or 1 GiB.
    pub page_size: u64,
}

impl Translation {
    /// Bytes from `gpa` to the end of its page (a longer access needs another walk).
    pub fn span(&self) -> u64 {
        self.page_size - (self.gpa & (self.page_size - 1))
    }
}

/// Why a walk failed; every variant names the address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    #[error("kva {va:#x} is not canonical under {levels}-level paging (not a kernel or user address)")]
    NonCanonical { va: u64, levels: u8 },
    #[error(
        "kva {va:#x} is not mapped: the walk stopped at the {level} entry {index} \
         (gpa {entry_gpa:#x} holds {entry:#x}, not present)"
    )]
    NotPresent { va: u64, level: Level, index: u64, entry_gpa: u64, entry: u64 },
    #[error("kva {va:#x}: reading the {level} entry at gpa {entry_gpa:#x}: {why}")]
    Read { va: u64, level: Level, entry_gpa: u64, why: String },
}

/// Translates `va` through the paging hierarchy rooted at `root` (a CR3 value:
/// PCID and flag bits are ignored), 5-level when `la57`.
pub fn translate(mem: &impl PhysMem, root: u64, la57: bool, va: u64) -> Result<Translation, WalkError> {
    let levels: u8 = if la57 { 5 } else { 4 };
    let top_bit = if la57 { 56 } else { 47 };
    // Bits 63..=top_bit must all equal bit top_bit.
    let high = (va as i64) >> top_bit;
    if high != 0 && high != -1 {
        return Err(WalkError::NonCanonical { va, levels });
    }
    let order: &[Level] = if la57 {
        &[Level::Pml5, Level::Pml4, Level::Pdpt, Level::Pd, Level::Pt]
    } else {
        &[Level::Pml4, Level::Pdpt, Level::Pd, Level::Pt]
    };
    let mut table = root & ADDR_MASK;
    for &level in order {
        let index = (va >> level.shift()) & 0x1ff;
        let entry_gpa = table + index * 8;
        let entry = mem.read_u64(entry_gpa).map_err(|why| WalkError::Read { va, level, entry_gpa, why })?;
        if entry & PRESENT == 0 {
            return Err(WalkError::NotPresent { va, level, index, entry_gpa, entry });
        }
        let huge = entry & PAGE_SIZE_BIT != 0 && matches!(level, Level::Pdpt | Level::Pd);
        if huge || level == Level::Pt {
            let page_size = 1u64 << level.shift();
            let base = entry & ADDR_MASK & !(page_size - 1);
            return Ok(Translation { gpa: base | (va & (page_size - 1)), page_size });
        }
        table = entry & ADDR_MASK;
    }
    unreachable!("the PT level always returns")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Sparse guest memory: u64 entries by address, zero elsewhere.
    #[derive(Default)]
    struct Sparse(HashMap<u64, u64>);

    impl PhysMem for Sparse {
        fn read_u64(&self, gpa: u64) -> Result<u64, String> {
            if gpa >= 1 << 40 {
                return Err(format!("gpa {gpa:#x} is outside guest RAM"));
            }
            Ok(self.0.get(&gpa).copied().unwrap_or(0))
        }
    }

    impl Sparse {
        fn set(&mut self, table: u64, index: u64, entry: u64) {
            self.0.insert(table + index * 8, entry);
        }
    }

    fn idx(va: u64, shift: u32) -> u64 {
        (va >> shift) & 0x1ff
    }

    const VA: u64 = 0xffff_c900_1234_5678;

    /// Tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD), 0x4000 (PT); 4 KiB page at 0x7_7000.
    fn four_level() -> Sparse {
        let mut m = Sparse::default();
        m.set(0x1000, idx(VA, 39), 0x2000 | 0x63);
        m.set(0x2000, idx(VA, 30), 0x3000 | 0x63);
        m.set(0x3000, idx(VA, 21), 0x4000 | 0x63);
        m.set(0x4000, idx(VA, 12), 0x8000_0000_0007_7063);
        m
    }

    #[test]
    fn four_level_4k_page() {
        let m = four_level();
        // PCID bits in CR3 are ignored.
        let t = translate(&m, 0x1000 | 0x5, false, VA).unwrap();
        assert_eq!(t, Translation { gpa: 0x7_7678, page_size: 4096 });
        assert_eq!(t.span(), 4096 - 0x678);
    }

    #[test]
    fn two_mib_and_one_gib_pages() {
        let mut m = four_level();
        m.set(0x3000, idx(VA, 21), 0x4000_0000 | PAGE_SIZE_BIT | 0x63);
        let t = translate(&m, 0x1000, false, VA).unwrap();
        assert_eq!(t, Translation { gpa: 0x4000_0000 | (VA & 0x1f_ffff), page_size: 2 << 20 });
        m.set(0x2000, idx(VA, 30), 0x8000_0000 | PAGE_SIZE_BIT | 0x63);
        let t = translate(&m, 0x1000, false, VA).unwrap();
        assert_eq!(t, Translation { gpa: 0x8000_0000 | (VA & 0x3fff_ffff), page_size: 1 << 30 });
    }

    #[test]
    fn five_level_walk_uses_the_pml5_index() {
        let mut m = four_level();
        m.set(0x9000, idx(VA, 48), 0x1000 | 0x63);
        assert_eq!(translate(&m, 0x9000, true, VA).unwrap().gpa, 0x7_7678);
        // The same tables walked as 4-level from the PML5 root find nothing.
        let err = translate(&m, 0x9000, false, VA).unwrap_err();
        assert!(matches!(err, WalkError::NotPresent { level: Level::Pml4, .. }), "{err}");
    }

    #[test]
    fn unmapped_names_the_address_and_the_level() {
        let mut m = four_level();
        m.set(0x3000, idx(VA, 21), 0);
        let err = translate(&m, 0x1000, false, VA).unwrap_err().to_string();
        assert!(err.contains("0xffffc90012345678") && err.contains("PD (level 2)"), "{err}");
    }

    #[test]
    fn non_canonical_and_unreadable_tables_are_errors() {
        let m = four_level();
        let err = translate(&m, 0x1000, false, 0x0000_8000_0000_0000).unwrap_err();
        assert_eq!(err, WalkError::NonCanonical { va: 0x0000_8000_0000_0000, levels: 4 });
        // Canonical under LA57 (bit 56 and up equal) but not under 4-level paging.
        assert!(translate(&m, 0x1000, false, 0xff00_0000_0000_0000).is_err());
        let err = translate(&m, 1 << 41, false, VA).unwrap_err();
        assert!(matches!(err, WalkError::Read { level: Level::Pml4, .. }), "{err}");
    }
}
