//! nf_tables rule expressions as netlink attributes: the few kinds the firewall core's rules
//! are made of, written and read back.
//!
//! Each expression is encoded with exactly the attributes, in the order, the kernel dumps it
//! with, so an expression read back compares equal to the one that was written. Registers are
//! fixed the way nft allocates them for these rules: matches load into register 1, a NAT's
//! address and port go in registers 1 and 2, verdicts in register 0. Anything else read from
//! the kernel is kept as `Other`, which equals nothing this module writes.

use super::nlmsg::{attr, attr_str, attrs, str_attr};

const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

/// `enum nft_registers`: the verdict register and the first two 16-byte data registers.
const REG_VERDICT: u32 = 0;
const REG_1: u32 = 1;
const REG_2: u32 = 2;

/// `enum nft_payload_bases`.
pub const BASE_LINK: u32 = 0;
pub const BASE_NETWORK: u32 = 1;
pub const BASE_TRANSPORT: u32 = 2;

/// `enum nft_meta_keys` used here.
pub const META_IIFNAME: u32 = 6;
pub const META_OIFNAME: u32 = 7;
pub const META_NFPROTO: u32 = 15;
pub const META_L4PROTO: u32 = 16;

/// `enum nft_cmp_ops` used here.
pub const CMP_EQ: u32 = 0;
pub const CMP_NEQ: u32 = 1;

/// `enum nft_ct_keys`: the connection's state bits.
pub const CT_STATE: u32 = 0;

/// `enum nft_fib_result` and `enum nft_fib_flags` used here.
pub const FIB_RESULT_ADDRTYPE: u32 = 3;
pub const FIB_F_DADDR: u32 = 2;

/// Verdict codes (`NF_DROP`, `NF_ACCEPT`, `enum nft_verdicts`).
pub const VERDICT_DROP: i32 = 0;
pub const VERDICT_ACCEPT: i32 = 1;
pub const VERDICT_JUMP: i32 = -3;
pub const VERDICT_GOTO: i32 = -4;
pub const VERDICT_RETURN: i32 = -5;

/// `enum nft_nat_types`: destination NAT.
pub const NAT_DNAT: u32 = 1;
/// NF_NAT_RANGE_MAP_IPS | NF_NAT_RANGE_PROTO_SPECIFIED: what the kernel records (and dumps)
/// for a NAT given both an address and a port register.
const NAT_FLAGS_ADDR_PORT: u32 = 0x3;

/// One expression of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `meta load <key> => reg 1`.
    Meta { key: u32 },
    /// `payload load <len>b @ <base> + <offset> => reg 1`.
    Payload { base: u32, offset: u32, len: u32 },
    /// `bitwise reg 1 = (reg 1 & mask) ^ xor`.
    Bitwise { mask: Vec<u8>, xor: Vec<u8> },
    /// `cmp <op> reg 1 <data>`.
    Cmp { op: u32, data: Vec<u8> },
    /// `ct load <key> => reg 1`.
    Ct { key: u32 },
    /// `fib <flags> <result> => reg 1`.
    Fib { flags: u32, result: u32 },
    /// `immediate reg 0 <verdict>`; `chain` for jump and goto.
    Verdict { code: i32, chain: Option<String> },
    /// `immediate reg <reg> <data>`.
    Load { reg: u32, data: Vec<u8> },
    /// `masq` without options.
    Masq,
    /// `nat <kind> <family> addr_min reg 1 proto_min reg 2`.
    Nat { kind: u32, family: u32 },
    /// Anything else the kernel listed: its name and data, undecoded.
    Other { name: String, data: Vec<u8> },
}

fn be32(kind: u16, v: u32) -> Vec<u8> {
    attr(kind, &v.to_be_bytes())
}

fn data_value(kind: u16, v: &[u8]) -> Vec<u8> {
    attr(kind, &attr(NFTA_DATA_VALUE, v))
}

impl Expr {
    fn name(&self) -> &str {
        match self {
            Expr::Meta { .. } => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Cmp { .. } => "cmp",
            Expr::Ct { .. } => "ct",
            Expr::Fib { .. } => "fib",
            Expr::Verdict { .. } | Expr::Load { .. } => "immediate",
            Expr::Masq => "masq",
            Expr::Nat { .. } => "nat",
            Expr::Other { name, .. } => name,
        }
    }

    /// The attributes inside NFTA_EXPR_DATA, in the kernel's dump order.
    fn data(&self) -> Vec<u8> {
        match self {
            // NFTA_META_KEY, NFTA_META_DREG
            Expr::Meta { key } => [be32(2, *key), be32(1, REG_1)].concat(),
            // NFTA_PAYLOAD_DREG, _BASE, _OFFSET, _LEN
            Expr::Payload { base, offset, len } => {
                [be32(1, REG_1), be32(2, *base), be32(3, *offset), be32(4, *len)].concat()
            }
            // NFTA_BITWISE_SREG, _DREG, _LEN, _OP (mask and xor), _MASK, _XOR
            Expr::Bitwise { mask, xor } => [
                be32(1, REG_1),
                be32(2, REG_1),
                be32(3, mask.len() as u32),
                be32(6, 0),
                data_value(4, mask),
                data_value(5, xor),
            ]
            .concat(),
            // NFTA_CMP_SREG, _OP, _DATA
            Expr::Cmp { op, data } => [be32(1, REG_1), be32(2, *op), data_value(3, data)].concat(),
            // NFTA_CT_DREG, _KEY
            Expr::Ct { key } => [be32(1, REG_1), be32(2, *key)].concat(),
            // NFTA_FIB_DREG, _RESULT, _FLAGS
            Expr::Fib { flags, result } => [be32(1, REG_1), be32(2, *result), be32(3, *flags)].concat(),
            // NFTA_IMMEDIATE_DREG, _DATA
            Expr::Verdict { code, chain } => {
                let mut v = attr(NFTA_VERDICT_CODE, &code.to_be_bytes());
                if let Some(c) = chain {
                    v.extend(str_attr(NFTA_VERDICT_CHAIN, c));
                }
                [be32(1, REG_VERDICT), attr(2, &attr(NFTA_DATA_VERDICT, &v))].concat()
            }
            Expr::Load { reg, data } => [be32(1, *reg), data_value(2, data)].concat(),
            Expr::Masq => Vec::new(),
            // NFTA_NAT_TYPE, _FAMILY, _REG_ADDR_MIN, _REG_ADDR_MAX, _REG_PROTO_MIN,
            // _REG_PROTO_MAX, _FLAGS
            Expr::Nat { kind, family } => [
                be32(1, *kind),
                be32(2, *family),
                be32(3, REG_1),
                be32(4, REG_1),
                be32(5, REG_2),
                be32(6, REG_2),
                be32(7, NAT_FLAGS_ADDR_PORT),
            ]
            .concat(),
            Expr::Other { data, .. } => data.clone(),
        }
    }
}

/// The value of an NFTA_RULE_EXPRESSIONS attribute: one list element per expression.
pub fn encode(exprs: &[Expr]) -> Vec<u8> {
    exprs
        .iter()
        .flat_map(|e| {
            attr(NFTA_LIST_ELEM, &[str_attr(NFTA_EXPR_NAME, e.name()), attr(NFTA_EXPR_DATA, &e.data())].concat())
        })
        .collect()
}

/// The expressions of an NFTA_RULE_EXPRESSIONS value as the kernel dumped it.
pub fn decode(list: &[u8]) -> Vec<Expr> {
    attrs(list)
        .filter(|(kind, _, _)| *kind == NFTA_LIST_ELEM)
        .map(|(_, _, elem)| {
            let mut name = String::new();
            let mut data: &[u8] = &[];
            for (kind, _, value) in attrs(elem) {
                match kind {
                    NFTA_EXPR_NAME => name = attr_str(value),
                    NFTA_EXPR_DATA => data = value,
                    _ => {}
                }
            }
            decode_one(&name, data).unwrap_or_else(|| Expr::Other { name, data: data.to_vec() })
        })
        .collect()
}

/// One expression, when it is of a kind and shape `Expr` names; the same bytes that
/// `Expr::data` would write are required, so nothing is dropped on the way.
fn decode_one(name: &str, data: &[u8]) -> Option<Expr> {
    let mut a: Vec<(u16, &[u8])> = attrs(data).map(|(k, _, v)| (k, v)).collect();
    let u32_at = |a: &[(u16, &[u8])], kind: u16| -> Option<u32> {
        let v = a.iter().find(|(k, _)| *k == kind)?.1;
        Some(u32::from_be_bytes(v.get(..4)?.try_into().ok()?))
    };
    let value_at = |a: &[(u16, &[u8])], kind: u16| -> Option<Vec<u8>> {
        let nested = a.iter().find(|(k, _)| *k == kind)?.1;
        attrs(nested).find(|(k, _, _)| *k == NFTA_DATA_VALUE).map(|(_, _, v)| v.to_vec())
    };
    let e = match name {
        "meta" => Expr::Meta { key: u32_at(&a, 2)? },
        "payload" => Expr::Payload { base: u32_at(&a, 2)?, offset: u32_at(&a, 3)?, len: u32_at(&a, 4)? },
        "bitwise" => Expr::Bitwise { mask: value_at(&a, 4)?, xor: value_at(&a, 5)? },
        "cmp" => Expr::Cmp { op: u32_at(&a, 2)?, data: value_at(&a, 3)? },
        "ct" => Expr::Ct { key: u32_at(&a, 2)? },
        "fib" => Expr::Fib { flags: u32_at(&a, 3)?, result: u32_at(&a, 2)? },
        "immediate" => {
            let reg = u32_at(&a, 1)?;
            if reg == REG_VERDICT {
                let nested = a.iter().find(|(k, _)| *k == 2)?.1;
                let (_, _, verdict) = attrs(nested).find(|(k, _, _)| *k == NFTA_DATA_VERDICT)?;
                let mut code = None;
                let mut chain = None;
                for (k, _, v) in attrs(verdict) {
                    match k {
                        NFTA_VERDICT_CODE => code = Some(i32::from_be_bytes(v.get(..4)?.try_into().ok()?)),
                        NFTA_VERDICT_CHAIN => chain = Some(attr_str(v)),
                        _ => {}
                    }
                }
                Expr::Verdict { code: code?, chain }
            } else {
                Expr::Load { reg, data: value_at(&a, 2)? }
            }
        }
        "masq" => Expr::Masq,
        "nat" => Expr::Nat { kind: u32_at(&a, 1)?, family: u32_at(&a, 2)? },
        _ => return None,
    };
    // Registers, options and attributes other than these read as something else.
    let written = e.data();
    let mut want: Vec<(u16, &[u8])> = attrs(&written).map(|(k, _, v)| (k, v)).collect();
    a.sort_by_key(|(k, _)| *k);
    want.sort_by_key(|(k, _)| *k);
    (a == want).then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_bytes() {
        // payload load 4b @ network header + 12 => reg 1; cmp eq reg 1 0x0200000a
        let e = encode(&[
            Expr::Payload { base: BASE_NETWORK, offset: 12, len: 4 },
            Expr::Cmp { op: CMP_EQ, data: vec![10, 0, 0, 2] },
        ]);
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            // LIST_ELEM (len 52): NAME "payload", DATA (len 36): DREG 1, BASE 1, OFFSET 12, LEN 4
            52, 0, 1, 0,
            12, 0, 1, 0, b'p', b'a', b'y', b'l', b'o', b'a', b'd', 0,
            36, 0, 2, 0,
            8, 0, 1, 0, 0, 0, 0, 1,
            8, 0, 2, 0, 0, 0, 0, 1,
            8, 0, 3, 0, 0, 0, 0, 12,
            8, 0, 4, 0, 0, 0, 0, 4,
            // LIST_ELEM (len 44): NAME "cmp", DATA (len 32): SREG 1, OP eq, DATA { VALUE 10.0.0.2 }
            44, 0, 1, 0,
            8, 0, 1, 0, b'c', b'm', b'p', 0,
            32, 0, 2, 0,
            8, 0, 1, 0, 0, 0, 0, 1,
            8, 0, 2, 0, 0, 0, 0, 0,
            12, 0, 3, 0, 8, 0, 1, 0, 10, 0, 0, 2,
        ];
        assert_eq!(e, want);

        // immediate reg 0 jump -> c
        #[rustfmt::skip]
        let want: Vec<u8> = vec![
            // LIST_ELEM (len 56): NAME "immediate", DATA (len 36): DREG 0 (the verdict register),
            56, 0, 1, 0,
            14, 0, 1, 0, b'i', b'm', b'm', b'e', b'd', b'i', b'a', b't', b'e', 0, 0, 0,
            36, 0, 2, 0,
            8, 0, 1, 0, 0, 0, 0, 0,
            // DATA { VERDICT { CODE -3 (jump), CHAIN "c" } }
            24, 0, 2, 0, 20, 0, 2, 0, 8, 0, 1, 0, 0xff, 0xff, 0xff, 0xfd, 6, 0, 2, 0, b'c', 0, 0, 0,
        ];
        assert_eq!(encode(&[Expr::Verdict { code: VERDICT_JUMP, chain: Some("c".into()) }]), want);
    }

    #[test]
    fn what_is_written_reads_back() {
        let all = vec![
            Expr::Meta { key: META_NFPROTO },
            Expr::Cmp { op: CMP_EQ, data: vec![2] },
            Expr::Payload { base: BASE_NETWORK, offset: 16, len: 4 },
            Expr::Bitwise { mask: vec![0xf0, 0, 0, 0], xor: vec![0; 4] },
            Expr::Cmp { op: CMP_NEQ, data: vec![0xe0, 0, 0, 0] },
            Expr::Ct { key: CT_STATE },
            Expr::Fib { flags: FIB_F_DADDR, result: FIB_RESULT_ADDRTYPE },
            Expr::Load { reg: 1, data: vec![10, 0, 0, 2] },
            Expr::Load { reg: 2, data: vec![0, 80] },
            Expr::Nat { kind: NAT_DNAT, family: 2 },
            Expr::Masq,
            Expr::Verdict { code: VERDICT_RETURN, chain: None },
            Expr::Verdict { code: VERDICT_GOTO, chain: Some("checks".into()) },
        ];
        assert_eq!(decode(&encode(&all)), all);
    }

    #[test]
    fn anything_else_is_other() {
        // A meta expression with another register, a counter, and a masq with flags.
        let meta_reg8 = [be32(2, META_L4PROTO), be32(1, 8)].concat();
        let masq_flags = be32(1, 4);
        let list = [
            attr(NFTA_LIST_ELEM, &[str_attr(NFTA_EXPR_NAME, "meta"), attr(NFTA_EXPR_DATA, &meta_reg8)].concat()),
            attr(NFTA_LIST_ELEM, &[str_attr(NFTA_EXPR_NAME, "counter"), attr(NFTA_EXPR_DATA, &[])].concat()),
            attr(NFTA_LIST_ELEM, &[str_attr(NFTA_EXPR_NAME, "masq"), attr(NFTA_EXPR_DATA, &masq_flags)].concat()),
        ]
        .concat();
        let got = decode(&list);
        assert_eq!(got.len(), 3);
        assert!(got.iter().all(|e| matches!(e, Expr::Other { .. })), "{got:?}");
        assert_eq!(encode(&got), list, "kept as they were");
    }
}
