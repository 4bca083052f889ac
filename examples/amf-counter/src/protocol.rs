//! The request protocol: one text line per request, one per reply, in order, over TCP.
//!
//! | Request | Reply |
//! |---|---|
//! | `ADD <client-id> <seq> <n>` | `OK <total>` once the checkpoint write holding the addition returned OK (or at once for a `seq` already applied: `<total>` is then the current total) |
//! | `GET` | `VALUE <total>` |
//! | anything else | `ERR <reason>` |
//!
//! `client-id` is 1 to [`MAX_CLIENT_ID`](crate::state::MAX_CLIENT_ID) printable ASCII
//! characters without spaces; `seq` and `n` are decimal `u64`. A client numbers its
//! additions with increasing `seq` and, after a connection error, sends every addition not
//! yet answered again, with the same numbers, in order, to whichever process is active by
//! then: one already counted is answered `OK` without being counted twice.

use std::fmt;

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `ADD <client-id> <seq> <n>`.
    Add {
        /// Who.
        client: String,
        /// The client's number for this addition.
        seq: u64,
        /// How much.
        n: u64,
    },
    /// `GET`.
    Get,
}

impl Request {
    /// Parses one line (without its line end).
    ///
    /// # Errors
    /// The reason, for an `ERR` reply.
    pub fn parse(line: &str) -> Result<Request, String> {
        let mut f = line.split_ascii_whitespace();
        match f.next() {
            Some("GET") if f.next().is_none() => Ok(Request::Get),
            Some("ADD") => {
                let (Some(client), Some(seq), Some(n), None) =
                    (f.next(), f.next(), f.next(), f.next())
                else {
                    return Err("usage: ADD <client-id> <seq> <n>".into());
                };
                let seq = seq.parse().map_err(|_| format!("bad seq {seq:?}"))?;
                let n = n.parse().map_err(|_| format!("bad n {n:?}"))?;
                Ok(Request::Add {
                    client: client.to_owned(),
                    seq,
                    n,
                })
            }
            Some("GET") => Err("usage: GET".into()),
            Some(other) => Err(format!("unknown request {other:?}")),
            None => Err("empty request".into()),
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Add { client, seq, n } => write!(f, "ADD {client} {seq} {n}"),
            Request::Get => write!(f, "GET"),
        }
    }
}

/// A reply line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `OK <total>`: the addition is counted and in the checkpoint.
    Ok(u64),
    /// `VALUE <total>`.
    Value(u64),
    /// `ERR <reason>`: nothing was done.
    Err(String),
}

impl Reply {
    /// Parses one reply line (without its line end); `None` for a line this server does not
    /// send.
    pub fn parse(line: &str) -> Option<Reply> {
        if let Some(r) = line.strip_prefix("ERR ") {
            return Some(Reply::Err(r.to_owned()));
        }
        let (word, n) = line.split_once(' ')?;
        let n = n.parse().ok()?;
        match word {
            "OK" => Some(Reply::Ok(n)),
            "VALUE" => Some(Reply::Value(n)),
            _ => None,
        }
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Ok(t) => write!(f, "OK {t}"),
            Reply::Value(t) => write!(f, "VALUE {t}"),
            // A reason never spans lines.
            Reply::Err(r) => write!(f, "ERR {}", r.replace(['\r', '\n'], " ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_print() {
        let add = Request::Add {
            client: "c1".into(),
            seq: 7,
            n: 3,
        };
        assert_eq!(Request::parse("ADD c1 7 3"), Ok(add.clone()));
        assert_eq!(add.to_string(), "ADD c1 7 3");
        assert_eq!(Request::parse("GET"), Ok(Request::Get));
        assert_eq!(Request::parse(" GET "), Ok(Request::Get));
        for bad in [
            "",
            "get",
            "GET 1",
            "ADD c1 7",
            "ADD c1 7 3 4",
            "ADD c1 -1 3",
            "ADD c1 7 x",
            "SET 4",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn replies_parse_and_print() {
        for r in [
            Reply::Ok(5),
            Reply::Value(0),
            Reply::Err("unknown request \"SET\"".into()),
        ] {
            assert_eq!(Reply::parse(&r.to_string()), Some(r));
        }
        assert_eq!(Reply::Err("a\nb".into()).to_string(), "ERR a b");
        assert_eq!(Reply::parse("OK x"), None);
        assert_eq!(Reply::parse("MAYBE 1"), None);
    }
}
