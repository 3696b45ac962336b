//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1): what a resource says
//! when it refuses a request (a 401's `error`, a DPoP nonce, later a resource
//! metadata URL). Read by the layer's 401 policy and by DPoP.

/// One challenge: its scheme and parameters (names lower-cased, quoted values
/// unescaped). A `token68` challenge has no parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub(crate) scheme: String,
    pub(crate) params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (lower case), if present.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The challenges of one `WWW-Authenticate` field value:
///
/// ```text
/// WWW-Authenticate = #challenge
/// challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
/// auth-param = token BWS "=" BWS ( token / quoted-string )
/// ```
///
/// Commas separate both challenges and parameters: a name followed by `=` is a
/// parameter, anything else starts the next challenge. Parsing stops at the first
/// malformed part and keeps what came before it; it never panics.
pub(crate) fn parse_challenges(value: &str) -> Vec<Challenge> {
    let mut p = Parser {
        s: value.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip_list_separators();
        if p.at_end() {
            return out;
        }
        let Some(scheme) = p.token() else { return out };
        let mut challenge = Challenge {
            scheme: scheme.to_owned(),
            params: Vec::new(),
        };
        let had_space = p.skip_ws();
        if had_space && p.token68() {
            out.push(challenge);
            continue;
        }
        // Parameters until the next challenge, the end, or a malformed part.
        loop {
            p.skip_list_separators();
            let start = p.i;
            let Some(name) = p.token() else {
                if !p.at_end() {
                    out.push(challenge);
                    return out;
                }
                break;
            };
            p.skip_ws();
            if !p.eat(b'=') {
                // A bare token: the scheme of the next challenge.
                p.i = start;
                break;
            }
            p.skip_ws();
            let value = if p.peek() == Some(b'"') {
                p.quoted()
            } else {
                p.token().map(str::to_owned)
            };
            let Some(value) = value else {
                out.push(challenge);
                return out;
            };
            challenge.params.push((name.to_ascii_lowercase(), value));
            p.skip_ws();
            match p.peek() {
                None | Some(b',') => {}
                Some(_) => {
                    out.push(challenge);
                    return out;
                }
            }
        }
        out.push(challenge);
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// Skips spaces and tabs; whether there were any.
    fn skip_ws(&mut self) -> bool {
        let start = self.i;
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
        self.i > start
    }

    /// Skips whitespace and commas (empty list elements are allowed).
    fn skip_list_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    /// `token = 1*tchar`.
    fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        // tchars are ASCII: the slice is valid UTF-8.
        (self.i > start)
            .then(|| std::str::from_utf8(&self.s[start..self.i]).ok())
            .flatten()
    }

    /// `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`,
    /// only when it is the whole rest of the challenge (followed by the end or a
    /// comma). Consumes it if so.
    fn token68(&mut self) -> bool {
        let start = self.i;
        let mut j = self.i;
        while self
            .s
            .get(j)
            .is_some_and(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b))
        {
            j += 1;
        }
        if j == start {
            return false;
        }
        while self.s.get(j) == Some(&b'=') {
            j += 1;
        }
        let mut k = j;
        while matches!(self.s.get(k), Some(b' ' | b'\t')) {
            k += 1;
        }
        if matches!(self.s.get(k), None | Some(b',')) {
            self.i = k;
            true
        } else {
            false
        }
    }

    /// `quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE`, unescaped.
    fn quoted(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return String::from_utf8(out).ok();
                }
                b'\\' => {
                    self.i += 1;
                    let c = self.peek()?;
                    out.push(c);
                    self.i += 1;
                }
                c => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(scheme: &str, params: &[(&str, &str)]) -> Challenge {
        Challenge {
            scheme: scheme.into(),
            params: params
                .iter()
                .map(|(n, v)| ((*n).into(), (*v).into()))
                .collect(),
        }
    }

    #[test]
    fn parses_params_quoted_strings_and_several_challenges() {
        assert_eq!(
            parse_challenges(
                r#"Bearer realm="x", error="invalid_token", error_description="expired""#
            ),
            vec![c(
                "Bearer",
                &[
                    ("realm", "x"),
                    ("error", "invalid_token"),
                    ("error_description", "expired")
                ]
            )]
        );
        assert_eq!(
            parse_challenges(r#"Basic realm="a, b", Bearer error=insufficient_scope"#),
            vec![
                c("Basic", &[("realm", "a, b")]),
                c("Bearer", &[("error", "insufficient_scope")])
            ]
        );
        assert_eq!(
            parse_challenges(r#"Bearer realm="say \"hi\" \\ there""#),
            vec![c("Bearer", &[("realm", r#"say "hi" \ there"#)])]
        );
        assert_eq!(
            parse_challenges("Negotiate abc+/=, Bearer"),
            vec![c("Negotiate", &[]), c("Bearer", &[])]
        );
        assert_eq!(
            parse_challenges("Bearer ERROR = \"invalid_token\""),
            vec![c("Bearer", &[("error", "invalid_token")])]
        );
        assert_eq!(parse_challenges(""), vec![]);
        assert_eq!(parse_challenges("Bearer"), vec![c("Bearer", &[])]);
        // Malformed: keep what came before.
        assert_eq!(
            parse_challenges(r#"Bearer realm="unterminated"#),
            vec![c("Bearer", &[])]
        );
    }
}

/// Property tests: any input parses without panicking, and rendered challenges
/// parse back to what was rendered.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn token() -> impl Strategy<Value = String> {
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,12}"
    }

    fn quoted_content() -> impl Strategy<Value = String> {
        // Visible ASCII and spaces, quotes and backslashes included.
        "[ -~]{0,24}"
    }

    fn quote(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        out
    }

    fn challenge() -> impl Strategy<Value = (String, Vec<(String, String, bool)>)> {
        (
            token(),
            prop::collection::vec((token(), quoted_content(), any::<bool>()), 0..4),
        )
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,64}") {
            let _ = parse_challenges(&s);
        }

        #[test]
        fn never_panics_on_header_like_input(s in "[ -~\t]{0,64}") {
            let _ = parse_challenges(&s);
        }

        #[test]
        fn rendered_challenges_parse_back(
            challenges in prop::collection::vec(challenge(), 1..4),
            spaces in "[ \t]{0,2}",
        ) {
            let mut rendered = Vec::new();
            let mut expected = Vec::new();
            for (scheme, params) in &challenges {
                let mut parts = Vec::new();
                let mut want = Vec::new();
                for (name, value, as_token) in params {
                    // A value that is a token may be sent bare.
                    let bare = *as_token && !value.is_empty() && value.bytes().all(is_tchar);
                    let v = if bare { value.clone() } else { quote(value) };
                    parts.push(format!("{name}{spaces}={spaces}{v}"));
                    want.push((name.to_ascii_lowercase(), value.clone()));
                }
                rendered.push(if parts.is_empty() {
                    scheme.clone()
                } else {
                    format!("{scheme} {}", parts.join(&format!("{spaces},{spaces}")))
                });
                expected.push(Challenge { scheme: scheme.clone(), params: want });
            }
            let header = rendered.join(", ");
            prop_assert_eq!(parse_challenges(&header), expected, "{}", header);
        }
    }
}
