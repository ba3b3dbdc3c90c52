//! Names of the set bits of a status field.

use std::fmt;

/// One set bit of a status field: its specification name, or `reserved_bit_<n>` for a
/// set bit the specification reserves (RFU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BitName {
    Named(&'static str),
    Reserved(u8),
}

impl fmt::Display for BitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BitName::Named(n) => f.write_str(n),
            BitName::Reserved(b) => write!(f, "reserved_bit_{b}"),
        }
    }
}

/// The set bits of `value` among the low `width` bits, ascending; `names[n]` is the
/// name of bit `n`, `None` (or a missing entry) marks it RFU.
pub(crate) fn bit_names(value: u32, width: u8, names: &[Option<&'static str>]) -> Vec<BitName> {
    (0..width.min(32))
        .filter(|b| value & (1u32 << b) != 0)
        .map(|b| match names.get(usize::from(b)).copied().flatten() {
            Some(n) => BitName::Named(n),
            None => BitName::Reserved(b),
        })
        .collect()
}

/// The name of code `code` in a table indexed by code; `"reserved"` for codes the
/// table marks (or leaves) RFU.
pub fn enum_name(table: &[Option<&'static str>], code: usize) -> &'static str {
    table.get(code).copied().flatten().unwrap_or("reserved")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// spec/decode.md §1 "Bit lists": ascending order, RFU bits as reserved_bit_<n>.
    #[test]
    fn set_bits_are_named_in_ascending_order_and_rfu_bits_by_number() {
        let names = [Some("a"), None, Some("c")];
        let got: Vec<String> = bit_names(0b1101, 4, &names)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(got, ["a", "c", "reserved_bit_3"]);
        assert!(bit_names(0x100, 8, &names).is_empty(), "bits past width");
    }

    /// spec/decode.md §1 "Enumerations": RFU codes get the name "reserved".
    #[test]
    fn codes_outside_a_table_are_reserved() {
        let t = [None, Some("one")];
        assert_eq!(enum_name(&t, 0), "reserved");
        assert_eq!(enum_name(&t, 1), "one");
        assert_eq!(enum_name(&t, 200), "reserved");
    }
}
