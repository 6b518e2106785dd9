//! Lambda event filtering: the pattern syntax and meaning the event source mapping applies to
//! each record before batching. A record is delivered when it matches any of the filters
//! (or when there are none).
//!
//! Supported: nested objects; arrays of matchers (any may match); exact strings, numbers,
//! booleans and `null`; `{"prefix": …}`, `{"suffix": …}`, `{"equals-ignore-case": …}`,
//! `{"anything-but": value | [values] | {"prefix": …}}`, `{"exists": bool}` and
//! `{"numeric": [op, n, …]}` (DynamoDB numbers arrive as strings and are compared as numbers).

use serde_json::Value;

/// Whether `record` passes `filters` (an empty list passes everything).
pub fn passes(filters: &[Value], record: &Value) -> bool {
    filters.is_empty()
        || filters
            .iter()
            .any(|pattern| matches_object(pattern, Some(record)))
}

fn matches_object(pattern: &Value, value: Option<&Value>) -> bool {
    let Some(fields) = pattern.as_object() else {
        return false;
    };
    fields.iter().all(|(name, sub)| {
        let field = value.and_then(|v| v.get(name));
        match sub {
            Value::Object(_) => matches_object(sub, field),
            Value::Array(matchers) => matchers.iter().any(|m| matches_value(m, field)),
            // A bare scalar is not valid pattern syntax; Lambda rejects it. Treat as no match.
            _ => false,
        }
    })
}

fn matches_value(matcher: &Value, field: Option<&Value>) -> bool {
    // A field that is an array matches when any element matches.
    if let Some(Value::Array(items)) = field
        && matcher.get("exists").is_none()
    {
        return items.iter().any(|item| matches_value(matcher, Some(item)));
    }
    match matcher {
        Value::Object(rule) => {
            let Some((kind, arg)) = rule.iter().next() else {
                return false;
            };
            match kind.as_str() {
                "exists" => arg.as_bool() == Some(field.is_some()),
                "prefix" => text(field)
                    .zip(arg.as_str())
                    .is_some_and(|(f, p)| f.starts_with(p)),
                "suffix" => text(field)
                    .zip(arg.as_str())
                    .is_some_and(|(f, s)| f.ends_with(s)),
                "equals-ignore-case" => text(field)
                    .zip(arg.as_str())
                    .is_some_and(|(f, s)| f.eq_ignore_ascii_case(s)),
                "anything-but" => field.is_some_and(|f| !anything_but_hits(arg, f)),
                "numeric" => number(field).is_some_and(|n| numeric(arg, n)),
                _ => false,
            }
        }
        scalar => field.is_some_and(|f| f == scalar),
    }
}

fn anything_but_hits(arg: &Value, field: &Value) -> bool {
    match arg {
        Value::Array(values) => values.iter().any(|v| v == field),
        Value::Object(_) => matches_value(arg, Some(field)),
        scalar => scalar == field,
    }
}

fn text(field: Option<&Value>) -> Option<&str> {
    field.and_then(Value::as_str)
}

fn number(field: Option<&Value>) -> Option<f64> {
    match field? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn numeric(arg: &Value, n: f64) -> bool {
    let Some(parts) = arg.as_array() else {
        return false;
    };
    parts.chunks(2).all(|pair| {
        match (
            pair.first().and_then(Value::as_str),
            pair.get(1).and_then(Value::as_f64),
        ) {
            (Some("="), Some(x)) => n == x,
            (Some(">"), Some(x)) => n > x,
            (Some(">="), Some(x)) => n >= x,
            (Some("<"), Some(x)) => n < x,
            (Some("<="), Some(x)) => n <= x,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(event: &str, plan: &str) -> Value {
        json!({"eventName": event, "dynamodb": {"NewImage": {"plan": {"S": plan}, "version": {"N": "3"}}}})
    }

    #[test]
    fn welcome_email_filter_passes_paid_inserts_and_modifies_only() {
        let filter = json!({"eventName": ["INSERT", "MODIFY"], "dynamodb": {"NewImage": {"plan": {"S": ["pro", "enterprise"]}}}});
        let filters = [filter];
        assert!(passes(&filters, &record("INSERT", "pro")));
        assert!(passes(&filters, &record("MODIFY", "enterprise")));
        assert!(!passes(&filters, &record("MODIFY", "free")));
        assert!(!passes(&filters, &record("REMOVE", "pro")));
        assert!(
            !passes(&filters, &json!({"eventName": "INSERT", "dynamodb": {}})),
            "no image, no match"
        );
    }

    #[test]
    fn no_filters_pass_everything_and_any_filter_may_match() {
        assert!(passes(&[], &record("REMOVE", "free")));
        let filters = [
            json!({"eventName": ["REMOVE"]}),
            json!({"eventName": ["INSERT"]}),
        ];
        assert!(passes(&filters, &record("INSERT", "free")));
        assert!(!passes(&filters, &record("MODIFY", "free")));
    }

    #[test]
    fn content_filters() {
        let r = record("MODIFY", "enterprise");
        let check = |pattern: Value| passes(&[json!({"dynamodb": {"NewImage": pattern}})], &r);
        assert!(check(json!({"plan": {"S": [{"prefix": "ent"}]}})));
        assert!(!check(json!({"plan": {"S": [{"prefix": "pro"}]}})));
        assert!(check(json!({"plan": {"S": [{"suffix": "prise"}]}})));
        assert!(check(
            json!({"plan": {"S": [{"equals-ignore-case": "ENTERPRISE"}]}})
        ));
        assert!(check(json!({"plan": {"S": [{"anything-but": ["free"]}]}})));
        assert!(!check(
            json!({"plan": {"S": [{"anything-but": "enterprise"}]}})
        ));
        assert!(check(
            json!({"version": {"N": [{"numeric": [">", 2, "<=", 3]}]}})
        ));
        assert!(!check(json!({"version": {"N": [{"numeric": [">", 3]}]}})));
        assert!(check(json!({"name": [{"exists": false}]})));
        assert!(!check(json!({"plan": [{"exists": false}]})));
        assert!(check(json!({"plan": [{"exists": true}]})));
    }
}
