//! A minimal DER tag-length-value walker.
//!
//! Why not only `der`/`x509-cert`? Signatures are over *exact* bytes: the `TBSCertificate` of a
//! certificate, the `signedAttrs` of a CMS `SignerInfo`, the precertificate TBS that an SCT signs.
//! Re-encoding a decoded structure is only safe if the encoder reproduces the input bit for bit;
//! slicing the original input is always safe. This walker hands out sub-slices of the input and
//! can re-wrap content with a new tag (DER lengths, minimal form), which is all the surgery the
//! precertificate reconstruction (RFC 6962 §3.2) and the CMS signed-attributes check (RFC 5652
//! §5.4) need. Only single-byte tags and definite lengths are accepted, as DER requires.

/// One DER element: its tag byte, its full encoding and its content octets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tlv<'a> {
    pub tag: u8,
    pub full: &'a [u8],
    pub content: &'a [u8],
}

/// Universal and context tags used in this module.
pub(crate) mod tag {
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const UTF8_STRING: u8 = 0x0c;
    pub const GENERALIZED_TIME: u8 = 0x18;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
    /// `[0]` constructed (EXPLICIT [0], or IMPLICIT [0] of a constructed type).
    pub const CTX0: u8 = 0xa0;
    /// `[3]` constructed (the certificate `extensions` field).
    pub const CTX3: u8 = 0xa3;
}

/// Reads one element from the front of `input`; returns it and the rest.
pub(crate) fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), String> {
    let tag = *input.first().ok_or("DER: unexpected end of input")?;
    if tag & 0x1f == 0x1f {
        return Err("DER: multi-byte tags are not supported".into());
    }
    let first = *input.get(1).ok_or("DER: truncated length")?;
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2usize)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 {
            return Err("DER: indefinite length is not allowed".into());
        }
        if n > 4 {
            return Err("DER: length too large".into());
        }
        let bytes = input.get(2..2 + n).ok_or("DER: truncated length")?;
        if bytes[0] == 0 {
            return Err("DER: non-minimal length".into());
        }
        let mut len = 0usize;
        for b in bytes {
            len = (len << 8) | usize::from(*b);
        }
        if len < 0x80 {
            return Err("DER: non-minimal length".into());
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len).ok_or("DER: length overflow")?;
    if end > input.len() {
        return Err("DER: element runs past the end of its container".into());
    }
    Ok((
        Tlv {
            tag,
            full: &input[..end],
            content: &input[header..end],
        },
        &input[end..],
    ))
}

/// Reads exactly one element that must span all of `input` and carry `expected` as its tag.
pub(crate) fn single(input: &[u8], expected: u8) -> Result<Tlv<'_>, String> {
    let (tlv, rest) = read(input)?;
    if !rest.is_empty() {
        return Err("DER: trailing data after element".into());
    }
    expect(tlv, expected)
}

/// Checks an element's tag.
pub(crate) fn expect(tlv: Tlv<'_>, expected: u8) -> Result<Tlv<'_>, String> {
    if tlv.tag == expected {
        Ok(tlv)
    } else {
        Err(format!(
            "DER: expected tag 0x{expected:02x}, found 0x{:02x}",
            tlv.tag
        ))
    }
}

/// All elements in a constructed value's content, in order (bounded: at most `max`).
pub(crate) fn children(content: &[u8], max: usize) -> Result<Vec<Tlv<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        if out.len() >= max {
            return Err("DER: too many elements".into());
        }
        let (tlv, r) = read(rest)?;
        out.push(tlv);
        rest = r;
    }
    Ok(out)
}

/// Encodes `content` under `tag` with a minimal DER length.
pub(crate) fn wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Whether an element is the OBJECT IDENTIFIER `oid` (compared in its encoded form).
pub(crate) fn oid_is(tlv: Tlv<'_>, oid: &const_oid::ObjectIdentifier) -> bool {
    tlv.tag == tag::OID && tlv.content == oid.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_lengths() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![7u8; len];
            let enc = wrap(tag::OCTET_STRING, &content);
            let t = single(&enc, tag::OCTET_STRING).unwrap();
            assert_eq!(t.content.len(), len);
        }
    }

    #[test]
    fn rejects_bad_lengths() {
        assert!(read(&[0x30, 0x80]).is_err());
        assert!(read(&[0x30, 0x81, 0x05, 0, 0, 0, 0, 0]).is_err());
        assert!(read(&[0x30, 0x05, 0]).is_err());
        assert!(read(&[0x1f, 0x01, 0]).is_err());
        assert!(read(&[]).is_err());
    }
}
