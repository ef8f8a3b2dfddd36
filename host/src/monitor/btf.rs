//! Field offsets from the kernel's BTF (the vmlinux `.BTF` section), with
//! nested member paths (`scx.clock`) and anonymous unions/structs searched.

use std::path::Path;

use btf_rs::{Btf, Type};

/// The kernel's type information.
pub struct KernelBtf {
    btf: Btf,
}

/// Where a field is: byte offset in its outermost struct and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldLoc {
    pub offset: u64,
    pub size: Option<u64>,
}

impl KernelBtf {
    /// Loads `.BTF` from a vmlinux ELF.
    pub fn from_vmlinux(path: &Path) -> Result<Self, String> {
        let elf = std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let bytes = elf_section(&elf, ".BTF").ok_or_else(|| {
            format!("{} has no .BTF section: boot a kernel built with CONFIG_DEBUG_INFO_BTF=y", path.display())
        })?;
        let btf = Btf::from_bytes(bytes).map_err(|e| format!("parsing the kernel's BTF: {e}"))?;
        Ok(Self { btf })
    }

    /// The byte offset (and size) of `path` (dot-separated) inside `struct struct_name`.
    pub fn field(&self, struct_name: &str, path: &str) -> Result<FieldLoc, String> {
        let ty = self
            .btf
            .resolve_types_by_name(struct_name)
            .map_err(|e| format!("struct {struct_name}: {e}"))?
            .into_iter()
            .find(|t| matches!(t, Type::Struct(s) if !s.members.is_empty()))
            .ok_or_else(|| format!("the kernel's BTF has no struct {struct_name}"))?;
        let mut cur = ty;
        let mut offset = 0u64;
        for part in path.split('.') {
            let (bits, next) = self
                .member(&cur, part)?
                .ok_or_else(|| format!("struct {struct_name} has no field {path:?} (no member {part:?})"))?;
            offset += bits / 8;
            cur = next;
        }
        Ok(FieldLoc { offset, size: self.size_of(&cur) })
    }

    /// Finds member `name` of a struct/union type (looking into anonymous members):
    /// its bit offset and (resolved) type.
    fn member(&self, ty: &Type, name: &str) -> Result<Option<(u64, Type)>, String> {
        let s = match self.strip(ty.clone())? {
            Type::Struct(s) | Type::Union(s) => s,
            other => return Err(format!("member {name:?} of a {} (not a struct)", other.name())),
        };
        for m in &s.members {
            let mname = self.btf.resolve_name(m).unwrap_or_default();
            let mty = self.btf.resolve_chained_type(m).map_err(|e| e.to_string())?;
            if mname == name {
                return Ok(Some((u64::from(m.bit_offset()), self.strip(mty)?)));
            }
            if mname.is_empty() {
                if let Some((bits, t)) = self.member(&mty, name).ok().flatten() {
                    return Ok(Some((u64::from(m.bit_offset()) + bits, t)));
                }
            }
        }
        Ok(None)
    }

    /// Strips typedefs and qualifiers.
    fn strip(&self, mut ty: Type) -> Result<Type, String> {
        for _ in 0..32 {
            match &ty {
                Type::Typedef(_) | Type::Const(_) | Type::Volatile(_) | Type::Restrict(_) => {
                    let inner = ty.as_btf_type().ok_or("untyped qualifier")?;
                    ty = self.btf.resolve_chained_type(inner).map_err(|e| e.to_string())?;
                }
                _ => return Ok(ty),
            }
        }
        Err("typedef chain too long".into())
    }

    fn size_of(&self, ty: &Type) -> Option<u64> {
        match ty {
            Type::Int(i) => Some(i.size() as u64),
            Type::Ptr(_) => Some(8),
            Type::Struct(s) | Type::Union(s) => Some(s.size() as u64),
            _ => None,
        }
    }
}

/// The bytes of section `name` of an ELF64 little-endian file.
pub fn elf_section<'a>(elf: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(elf.get(o..o + 2)?.try_into().ok()?) as usize);
    let u32_at = |o: usize| Some(u32::from_le_bytes(elf.get(o..o + 4)?.try_into().ok()?) as usize);
    let u64_at = |o: usize| Some(u64::from_le_bytes(elf.get(o..o + 8)?.try_into().ok()?) as usize);
    if elf.get(..4)? != b"\x7fELF" {
        return None;
    }
    let shoff = u64_at(0x28)?;
    let (shentsize, shnum, shstrndx) = (u16_at(0x3a)?, u16_at(0x3c)?, u16_at(0x3e)?);
    let sh = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(sh(shstrndx) + 0x18)?;
    for i in 0..shnum {
        let noff = strtab + u32_at(sh(i))?;
        let end = noff + elf.get(noff..)?.iter().position(|&b| b == 0)?;
        if elf.get(noff..end)? == name.as_bytes() {
            let (off, size) = (u64_at(sh(i) + 0x18)?, u64_at(sh(i) + 0x20)?);
            return elf.get(off..off + size);
        }
    }
    None
}
