// SPDX-License-Identifier: MIT OR Apache-2.0
//! The text form of a command: `MNEMONIC key=value ...`.
//!
//! [`core::fmt::Display`] for [`Command`] writes it; [`parse_line`] reads it back, with an
//! optional `N:` index in front (as `cargo xtask decode` prints it) and `#` comments.

use core::fmt;

use super::{Command, FieldError, ItsVersion, MAX_FIELDS, layout_by_mnemonic};

/// Why a line is not a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError<'a> {
    /// An index (`N:`) with no mnemonic after it.
    MissingMnemonic,
    /// No command has this mnemonic.
    UnknownMnemonic(&'a str),
    /// The command exists, but only in a later version of the layouts.
    NeedsVersion {
        /// The mnemonic.
        mnemonic: &'static str,
        /// The version that has it.
        version: ItsVersion,
    },
    /// A token that is not `key=value`.
    BadToken(&'a str),
    /// The command has no field with this key.
    UnknownKey {
        /// The command's mnemonic.
        mnemonic: &'static str,
        /// The key given.
        key: &'a str,
        /// The field exists in the GICv4.1 layout of this command.
        in_v41: bool,
    },
    /// A key given twice.
    DuplicateKey(&'static str),
    /// A field with no value given.
    MissingKey(&'static str),
    /// A value that is not an integer literal.
    BadValue {
        /// The field's key.
        key: &'static str,
        /// The text given.
        text: &'a str,
    },
    /// A value that does not fit its field, or a misaligned address.
    Field(FieldError),
}

impl fmt::Display for ParseError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingMnemonic => f.write_str("missing mnemonic"),
            Self::UnknownMnemonic(m) => write!(f, "unknown mnemonic `{m}`"),
            Self::NeedsVersion { mnemonic, version } => {
                write!(
                    f,
                    "{mnemonic} is a {version:?} command (decode/encode with --v41)"
                )
            }
            Self::BadToken(t) => write!(f, "expected key=value, found `{t}`"),
            Self::UnknownKey {
                mnemonic,
                key,
                in_v41: true,
            } => {
                write!(
                    f,
                    "field `{key}` of {mnemonic} exists only in the GICv4.1 layout (--v41)"
                )
            }
            Self::UnknownKey {
                mnemonic,
                key,
                in_v41: false,
            } => {
                write!(f, "unknown field `{key}` for {mnemonic}")
            }
            Self::DuplicateKey(k) => write!(f, "field `{k}` given twice"),
            Self::MissingKey(k) => write!(f, "missing field `{k}`"),
            Self::BadValue { key, text } => {
                write!(
                    f,
                    "field `{key}`: `{text}` is not an integer (decimal or 0x hex)"
                )
            }
            Self::Field(e) => write!(f, "{e}"),
        }
    }
}

impl From<FieldError> for ParseError<'_> {
    fn from(e: FieldError) -> Self {
        Self::Field(e)
    }
}

/// Parses an unsigned integer literal: decimal, or hexadecimal with `0x`; `_` separators are
/// allowed.
pub(crate) fn parse_u64(text: &str) -> Option<u64> {
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (text, 10),
    };
    if digits.is_empty() || digits.starts_with('_') {
        return None;
    }
    let mut value: u64 = 0;
    for c in digits.chars() {
        if c == '_' {
            continue;
        }
        let d = c.to_digit(radix)?;
        value = value.checked_mul(radix.into())?.checked_add(d.into())?;
    }
    Some(value)
}

/// Parses one line of the text form. Blank lines and `#` comments give `Ok(None)`.
///
/// ```
/// use its_core::cmd::{parse_line, Command, ItsVersion};
/// let c = parse_line("3: MAPC icid=0x1 rdbase=0x1 valid=1", ItsVersion::V4_0).unwrap();
/// assert_eq!(c.map(|c| c.encode()), Some([0x9, 0, 0x8000_0000_0001_0001, 0]));
/// ```
///
/// # Errors
/// [`ParseError`] naming the token or field at fault.
pub fn parse_line(line: &str, version: ItsVersion) -> Result<Option<Command>, ParseError<'_>> {
    let line = match line.find('#') {
        Some(i) => &line[..i],
        None => line,
    };
    let mut tokens = line.split_whitespace().peekable();
    let Some(first) = tokens.next() else {
        return Ok(None);
    };
    // An optional `N:` index, alone or glued to the mnemonic.
    let mnemonic = match first.split_once(':') {
        Some((index, rest)) if !index.is_empty() && parse_u64(index).is_some() => {
            if rest.is_empty() {
                tokens.next().ok_or(ParseError::MissingMnemonic)?
            } else {
                rest
            }
        }
        _ => first,
    };
    let layout = match layout_by_mnemonic(mnemonic, version) {
        Some(l) => l,
        None => {
            return Err(match layout_by_mnemonic(mnemonic, ItsVersion::V4_1) {
                Some(l) => ParseError::NeedsVersion {
                    mnemonic: l.mnemonic,
                    version: if layout_by_mnemonic(mnemonic, ItsVersion::V4_0).is_some() {
                        ItsVersion::V4_0
                    } else {
                        ItsVersion::V4_1
                    },
                },
                None => ParseError::UnknownMnemonic(mnemonic),
            });
        }
    };
    let mut values = [0u64; MAX_FIELDS];
    let mut seen = [false; MAX_FIELDS];
    for token in tokens {
        let (key, text) = token.split_once('=').ok_or(ParseError::BadToken(token))?;
        let Some(index) = layout.index_of(key) else {
            let in_v41 = version != ItsVersion::V4_1
                && layout_by_mnemonic(mnemonic, ItsVersion::V4_1)
                    .is_some_and(|l| l.field(key).is_some());
            return Err(ParseError::UnknownKey {
                mnemonic: layout.mnemonic,
                key,
                in_v41,
            });
        };
        let spec = &layout.fields[index];
        if seen[index] {
            return Err(ParseError::DuplicateKey(spec.key));
        }
        seen[index] = true;
        values[index] = parse_u64(text).ok_or(ParseError::BadValue {
            key: spec.key,
            text,
        })?;
    }
    if let Some(missing) = layout.fields.iter().zip(seen).find(|(_, s)| !s) {
        return Err(ParseError::MissingKey(missing.0.key));
    }
    Ok(Some(Command::from_values(
        layout,
        &values[..layout.fields.len()],
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::layout::FieldError;
    use std::string::ToString;

    #[test]
    fn integers() {
        assert_eq!(parse_u64("0"), Some(0));
        assert_eq!(parse_u64("42"), Some(42));
        assert_eq!(parse_u64("0x2A"), Some(42));
        assert_eq!(parse_u64("0x_2a"), None);
        assert_eq!(parse_u64("0x1_0000"), Some(0x10000));
        assert_eq!(parse_u64("0x"), None);
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_u64("0xffffffffffffffff"), Some(u64::MAX));
        assert_eq!(parse_u64("0x10000000000000000"), None);
        assert_eq!(parse_u64("12a"), None);
    }

    #[test]
    fn blank_and_comment_lines() {
        assert_eq!(parse_line("", ItsVersion::V4_0), Ok(None));
        assert_eq!(parse_line("   # nothing", ItsVersion::V4_0), Ok(None));
    }

    #[test]
    fn index_forms() {
        let want = parse_line("INT device=1 event=2", ItsVersion::V4_0).unwrap();
        assert!(want.is_some());
        assert_eq!(
            parse_line("7: INT device=1 event=2", ItsVersion::V4_0),
            Ok(want)
        );
        assert_eq!(
            parse_line("7:INT device=1 event=2", ItsVersion::V4_0),
            Ok(want)
        );
        assert_eq!(
            parse_line("int event=2 device=1 # c", ItsVersion::V4_0),
            Ok(want)
        );
        assert_eq!(
            parse_line("7:", ItsVersion::V4_0),
            Err(ParseError::MissingMnemonic)
        );
    }

    #[test]
    fn errors_name_the_field() {
        let v = ItsVersion::V4_0;
        assert_eq!(
            parse_line("FOO x=1", v),
            Err(ParseError::UnknownMnemonic("FOO"))
        );
        assert_eq!(
            parse_line("VSGI vpe=1", v),
            Err(ParseError::NeedsVersion {
                mnemonic: "VSGI",
                version: ItsVersion::V4_1
            })
        );
        assert_eq!(
            parse_line("INT device=1", v),
            Err(ParseError::MissingKey("event"))
        );
        assert_eq!(
            parse_line("INT device=1 event=2 icid=3", v),
            Err(ParseError::UnknownKey {
                mnemonic: "INT",
                key: "icid",
                in_v41: false
            })
        );
        assert_eq!(
            parse_line("INT device=1 device=2 event=2", v),
            Err(ParseError::DuplicateKey("device"))
        );
        assert_eq!(
            parse_line("INT device=one event=2", v),
            Err(ParseError::BadValue {
                key: "device",
                text: "one"
            })
        );
        assert_eq!(
            parse_line("INT device", v),
            Err(ParseError::BadToken("device"))
        );
        assert_eq!(
            parse_line("INT device=0x100000000 event=2", v),
            Err(ParseError::Field(FieldError::TooLarge {
                key: "device",
                value: 0x1_0000_0000,
                width: 32
            }))
        );
        assert_eq!(
            parse_line("MAPD device=1 size=4 itt=0x40000080 valid=1", v),
            Err(ParseError::Field(FieldError::Misaligned {
                key: "itt",
                value: 0x4000_0080,
                align: 0x100
            }))
        );
        let e = parse_line(
            "VMAPP vpe=1 rdbase=0 valid=1 vpt=0x40010000 vpt_size=15 alloc=1",
            v,
        )
        .unwrap_err();
        assert_eq!(
            e,
            ParseError::UnknownKey {
                mnemonic: "VMAPP",
                key: "alloc",
                in_v41: true
            }
        );
        assert!(e.to_string().contains("--v41"));
    }

    #[test]
    fn display_then_parse_is_identity() {
        let line = "VMAPP vpe=0x3 rdbase=0x1 valid=0x1 vpt=0x40010000 vpt_size=0xf";
        let c = parse_line(line, ItsVersion::V4_0).unwrap().unwrap();
        assert_eq!(c.to_string(), line);
    }
}
