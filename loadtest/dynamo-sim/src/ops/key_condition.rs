//! Parser for Query's `KeyConditionExpression`.
//!
//! Supports what DynamoDB allows on keys: `a = :v` on the partition key and
//! on the sort key `=`, `<`, `<=`, `>`, `>=`, `BETWEEN :a AND :b` and
//! `begins_with(sk, :p)`, joined by `AND`, with optional parentheses and
//! `#name` / `:value` placeholders. Every placeholder supplied must be used,
//! and a bare reserved word as an attribute name is refused, as DynamoDB does.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::reserved::is_reserved;

/// One comparison on one key attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyOp {
    /// `=`
    Eq(Value),
    /// `<`
    Lt(Value),
    /// `<=`
    Le(Value),
    /// `>`
    Gt(Value),
    /// `>=`
    Ge(Value),
    /// `BETWEEN a AND b`
    Between(Value, Value),
    /// `begins_with(attr, v)`
    BeginsWith(Value),
}

/// A condition on one attribute.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyCond {
    /// Resolved attribute name.
    pub attr: String,
    /// Comparison.
    pub op: KeyOp,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Name(String),
    Value(String),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn invalid(msg: impl std::fmt::Display) -> ApiError {
    ApiError::validation(format!("Invalid KeyConditionExpression: {msg}"))
}

fn syntax(tok: &str) -> ApiError {
    invalid(format!("Syntax error; token: \"{tok}\""))
}

fn tokenize(expr: &str) -> ApiResult<Vec<Tok>> {
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    let word = |start: usize, chars: &[char]| -> usize {
        let mut j = start;
        while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
            j += 1;
        }
        j
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '=' => {
                out.push(Tok::Op("="));
                i += 1;
            }
            '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let op = match (c, next) {
                    ('<', Some('=')) => "<=",
                    ('>', Some('=')) => ">=",
                    ('<', Some('>')) => "<>",
                    ('<', _) => "<",
                    _ => ">",
                };
                i += op.len();
                out.push(Tok::Op(op));
            }
            '#' | ':' => {
                let end = word(i + 1, &chars);
                if end == i + 1 {
                    return Err(syntax(&c.to_string()));
                }
                let text: String = chars[i..end].iter().collect();
                out.push(if c == '#' {
                    Tok::Name(text)
                } else {
                    Tok::Value(text)
                });
                i = end;
            }
            c if c.is_alphabetic() || c == '_' => {
                let end = word(i, &chars);
                out.push(Tok::Ident(chars[i..end].iter().collect()));
                i = end;
            }
            other => return Err(syntax(&other.to_string())),
        }
    }
    Ok(out)
}

/// Placeholder tables and what the expression used of them.
struct Ctx<'a> {
    names: Option<&'a Map<String, Value>>,
    values: Option<&'a Map<String, Value>>,
    used_names: BTreeSet<String>,
    used_values: BTreeSet<String>,
}

enum Operand {
    Attr(String),
    Val(Value),
}

struct Parser<'a, 'b> {
    toks: &'b [Tok],
    pos: usize,
    ctx: &'b mut Ctx<'a>,
}

fn tok_text(t: &Tok) -> String {
    match t {
        Tok::Name(s) | Tok::Value(s) | Tok::Ident(s) => s.clone(),
        Tok::Op(s) => (*s).to_string(),
        Tok::LParen => "(".into(),
        Tok::RParen => ")".into(),
        Tok::Comma => ",".into(),
    }
}

impl Parser<'_, '_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> ApiResult<Tok> {
        let t = self
            .toks
            .get(self.pos)
            .cloned()
            .ok_or_else(|| syntax("<EOF>"))?;
        self.pos += 1;
        Ok(t)
    }

    fn expect(&mut self, want: &Tok) -> ApiResult<()> {
        let t = self.next()?;
        if &t == want {
            Ok(())
        } else {
            Err(syntax(&tok_text(&t)))
        }
    }

    fn is_keyword(t: Option<&Tok>, kw: &str) -> bool {
        matches!(t, Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw))
    }

    fn operand(&mut self) -> ApiResult<Operand> {
        match self.next()? {
            Tok::Name(n) => {
                let resolved = self
                    .ctx
                    .names
                    .and_then(|m| m.get(&n))
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        invalid(format!(
                            "An expression attribute name used in the document path is not defined; attribute name: {n}"
                        ))
                    })?
                    .to_string();
                self.ctx.used_names.insert(n);
                Ok(Operand::Attr(resolved))
            }
            Tok::Value(v) => {
                let val = self.ctx.values.and_then(|m| m.get(&v)).cloned().ok_or_else(|| {
                    invalid(format!(
                        "An expression attribute value used in expression is not defined; attribute value: {v}"
                    ))
                })?;
                self.ctx.used_values.insert(v);
                Ok(Operand::Val(val))
            }
            Tok::Ident(id) => {
                if is_reserved(&id) {
                    return Err(invalid(format!(
                        "Attribute name is a reserved keyword; reserved keyword: {id}"
                    )));
                }
                Ok(Operand::Attr(id))
            }
            other => Err(syntax(&tok_text(&other))),
        }
    }

    fn conjunction(&mut self, out: &mut Vec<KeyCond>) -> ApiResult<()> {
        self.primary(out)?;
        while Self::is_keyword(self.peek(), "AND") {
            self.pos += 1;
            self.primary(out)?;
        }
        Ok(())
    }

    fn primary(&mut self, out: &mut Vec<KeyCond>) -> ApiResult<()> {
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            self.conjunction(out)?;
            return self.expect(&Tok::RParen);
        }
        if Self::is_keyword(self.peek(), "begins_with")
            && self.toks.get(self.pos + 1) == Some(&Tok::LParen)
        {
            self.pos += 2;
            let attr = self.operand()?;
            self.expect(&Tok::Comma)?;
            let val = self.operand()?;
            self.expect(&Tok::RParen)?;
            let (Operand::Attr(attr), Operand::Val(v)) = (attr, val) else {
                return Err(invalid(
                    "Incorrect operand type for operator or function; operator or function: begins_with",
                ));
            };
            out.push(KeyCond {
                attr,
                op: KeyOp::BeginsWith(v),
            });
            return Ok(());
        }
        if let Some(Tok::Ident(id)) = self.peek() {
            if self.toks.get(self.pos + 1) == Some(&Tok::LParen) {
                let id = id.clone();
                return Err(ApiError::validation(format!(
                    "Invalid KeyConditionExpression: Invalid function name; function: {id}"
                )));
            }
        }
        let left = self.operand()?;
        if Self::is_keyword(self.peek(), "BETWEEN") {
            self.pos += 1;
            let lo = self.operand()?;
            let and = self.next()?;
            if !matches!(&and, Tok::Ident(s) if s.eq_ignore_ascii_case("AND")) {
                return Err(syntax(&tok_text(&and)));
            }
            let hi = self.operand()?;
            let (Operand::Attr(attr), Operand::Val(lo), Operand::Val(hi)) = (left, lo, hi) else {
                return Err(ApiError::validation("Query key condition not supported"));
            };
            out.push(KeyCond {
                attr,
                op: KeyOp::Between(lo, hi),
            });
            return Ok(());
        }
        let op = match self.next()? {
            Tok::Op(op) => op,
            other => return Err(syntax(&tok_text(&other))),
        };
        let right = self.operand()?;
        // `:v < attr` is `attr > :v`.
        let (attr, val, op) = match (left, right) {
            (Operand::Attr(a), Operand::Val(v)) => (a, v, op),
            (Operand::Val(v), Operand::Attr(a)) => (
                a,
                v,
                match op {
                    "<" => ">",
                    "<=" => ">=",
                    ">" => "<",
                    ">=" => "<=",
                    o => o,
                },
            ),
            _ => return Err(ApiError::validation("Query key condition not supported")),
        };
        let op = match op {
            "=" => KeyOp::Eq(val),
            "<" => KeyOp::Lt(val),
            "<=" => KeyOp::Le(val),
            ">" => KeyOp::Gt(val),
            ">=" => KeyOp::Ge(val),
            _ => {
                return Err(invalid(
                    "Unsupported operator in KeyConditionExpression; operator: <>",
                ))
            }
        };
        out.push(KeyCond { attr, op });
        Ok(())
    }
}

/// Parse `expr`, resolving placeholders; fails if any supplied placeholder
/// is unused (DynamoDB's rule), naming the unused keys.
pub fn parse(
    expr: &str,
    names: Option<&Map<String, Value>>,
    values: Option<&Map<String, Value>>,
) -> ApiResult<Vec<KeyCond>> {
    if expr.trim().is_empty() {
        return Err(invalid("The expression can not be empty;"));
    }
    let toks = tokenize(expr)?;
    let mut ctx = Ctx {
        names,
        values,
        used_names: BTreeSet::new(),
        used_values: BTreeSet::new(),
    };
    let mut out = Vec::new();
    let mut p = Parser {
        toks: &toks,
        pos: 0,
        ctx: &mut ctx,
    };
    p.conjunction(&mut out)?;
    if let Some(extra) = p.peek() {
        return Err(syntax(&tok_text(extra)));
    }
    let unused = |given: Option<&Map<String, Value>>, used: &BTreeSet<String>| -> Vec<String> {
        given
            .map(|m| m.keys().filter(|k| !used.contains(*k)).cloned().collect())
            .unwrap_or_default()
    };
    let unused_values = unused(values, &ctx.used_values);
    if !unused_values.is_empty() {
        return Err(ApiError::validation(format!(
            "Value provided in ExpressionAttributeValues unused in expressions: keys: {{{}}}",
            unused_values.join(", ")
        )));
    }
    let unused_names = unused(names, &ctx.used_names);
    if !unused_names.is_empty() {
        return Err(ApiError::validation(format!(
            "Value provided in ExpressionAttributeNames unused in expressions: keys: {{{}}}",
            unused_names.join(", ")
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn parses_all_operators() {
        let names = obj(json!({"#p": "pk", "#s": "sk"}));
        let values = obj(json!({":p": {"S": "a"}, ":x": {"N": "1"}, ":y": {"N": "5"}}));
        let c = parse(
            "#p = :p AND #s BETWEEN :x AND :y",
            Some(&names),
            Some(&values),
        )
        .expect("parses");
        assert_eq!(c.len(), 2);
        assert_eq!(
            c[1].op,
            KeyOp::Between(json!({"N": "1"}), json!({"N": "5"}))
        );
        let c = parse(
            "(pk = :p) AND begins_with(sk, :x)",
            None,
            Some(&obj(json!({":p": {"S": "a"}, ":x": {"S": "b"}}))),
        )
        .expect("parses");
        assert_eq!(c[1].op, KeyOp::BeginsWith(json!({"S": "b"})));
        let c = parse(":p >= sk", None, Some(&obj(json!({":p": {"S": "a"}})))).expect("parses");
        assert_eq!(c[0].op, KeyOp::Le(json!({"S": "a"})));
    }

    #[test]
    fn reports_dynamodb_errors() {
        let values = obj(json!({":p": {"S": "a"}, ":unused": {"S": "b"}}));
        let e = parse("pk = :p", None, Some(&values)).expect_err("unused value");
        assert!(
            e.to_string()
                .contains("unused in expressions: keys: {:unused}"),
            "{e}"
        );
        let e = parse("pk = :nope", None, None).expect_err("undefined");
        assert!(e.to_string().contains("attribute value: :nope"), "{e}");
        let e = parse(
            "timestamp = :p",
            None,
            Some(&obj(json!({":p": {"S": "a"}}))),
        )
        .expect_err("reserved");
        assert!(e.to_string().contains("reserved keyword: timestamp"), "{e}");
        assert!(parse("pk = ", None, None).is_err());
    }
}
