//! The CLI's topology syntax: `<nodes>n<llcs>l<cores>c<threads>t`.

use crate::op_model::Topology;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("topology {input:?}: {why}; write <nodes>n<llcs per node>l<cores per llc>c<threads per core>t, e.g. 1n2l2c1t")]
pub struct TopologyError {
    input: String,
    why: String,
}

/// Parses `1n2l2c1t` (every part required, each at least 1).
pub fn parse_topology(input: &str) -> Result<Topology, TopologyError> {
    let err = |why: &str| TopologyError { input: input.to_owned(), why: why.to_owned() };
    let mut rest = input.trim();
    let mut take = |unit: char| -> Result<u32, TopologyError> {
        let end = rest.find(unit).ok_or_else(|| err(&format!("missing the '{unit}' part")))?;
        let n: u32 = rest[..end].parse().map_err(|_| err(&format!("the '{unit}' count is not a number")))?;
        if n == 0 {
            return Err(err(&format!("the '{unit}' count is 0")));
        }
        rest = &rest[end + 1..];
        Ok(n)
    };
    let t = Topology {
        numa_nodes: take('n')?,
        llcs_per_node: take('l')?,
        cores_per_llc: take('c')?,
        threads_per_core: take('t')?,
    };
    if !rest.is_empty() {
        return Err(err(&format!("trailing {rest:?}")));
    }
    if t.vcpus() > 64 {
        return Err(err(&format!("{} vCPUs is more than the 64 this backend boots", t.vcpus())));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let t = parse_topology("2n2l2c1t").unwrap();
        assert_eq!((t.numa_nodes, t.llcs_per_node, t.cores_per_llc, t.threads_per_core), (2, 2, 2, 1));
        assert_eq!(t.vcpus(), 8);
        assert_eq!(t.to_string(), "2n2l2c1t");
        assert!(parse_topology("1n2l2c").unwrap_err().to_string().contains("missing the 't' part"));
        assert!(parse_topology("0n1l1c1t").unwrap_err().to_string().contains("is 0"));
        assert!(parse_topology("1n1l1c1tx").is_err());
        assert!(parse_topology("anlcct").is_err());
    }
}
