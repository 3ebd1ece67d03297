//! Pages of a long list: how big a page a caller may ask for, where a page starts (a token the
//! hub gave out), and the token of the page after it.
//!
//! A service reads one row more than the page holds; that row, if it comes, says there is a
//! next page ([`Page::cut`]).

use super::Violations;

/// A page's size when the caller asks for none.
pub const DEFAULT_PAGE: u32 = 100;
/// The most a page holds, where a concept sets no other ceiling.
pub const MAX_PAGE: u32 = 1_000;

/// One page of a list, and the token of the next (none after the last).
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// The page of `rows`, read with one more than `limit`: the first `limit`, and when more
    /// came, the next page's token made from the last row kept.
    pub fn cut(mut rows: Vec<T>, limit: u32, token: impl FnOnce(&T) -> String) -> Self {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(token) } else { None };
        Page { items: rows, next }
    }

    /// The same page with each item converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(f).collect(), next: self.next }
    }

    /// The same page with each item converted; the first failure fails the page.
    pub fn try_map<U, E>(self, f: impl FnMut(T) -> Result<U, E>) -> Result<Page<U>, E> {
        Ok(Page { items: self.items.into_iter().map(f).collect::<Result<_, _>>()?, next: self.next })
    }
}

/// A page's size (the default for 0) and where it starts (the number after `prefix` in a token
/// this hub gave out; `None` for the first page); problems go to `v`.
pub fn paging(v: &mut Violations, page_size: u32, token: &str, prefix: char) -> (u32, Option<i64>) {
    if page_size > MAX_PAGE {
        v.add("page_size", format!("is {page_size}; at most {MAX_PAGE}"));
    }
    let from = match token {
        "" => None,
        t => v.check(
            "page_token",
            t.strip_prefix(prefix).and_then(position).ok_or("is not a token this hub gave out".to_owned()),
        ),
    };
    (if page_size == 0 { DEFAULT_PAGE } else { page_size }, from)
}

/// The position a token names: the key of a page's last row, as the hub writes it (digits only,
/// so that `-1` or `+7`, which the hub never gives out, are refused rather than read).
pub fn position(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_read_with_one_row_more_keeps_the_limit_and_names_the_next() {
        let page = Page::cut(vec![1, 2, 3], 2, |n| format!("n{n}"));
        assert_eq!((page.items, page.next), (vec![1, 2], Some("n2".to_owned())));
        let last = Page::cut(vec![1, 2], 2, |n| format!("n{n}"));
        assert_eq!((last.items, last.next), (vec![1, 2], None));
        let empty = Page::cut(Vec::<i32>::new(), 2, |n| format!("n{n}"));
        assert_eq!((empty.items.len(), empty.next), (0, None));
    }

    #[test]
    fn a_page_size_over_the_ceiling_or_a_token_not_given_out_is_named() {
        let mut v = Violations::new();
        assert_eq!(paging(&mut v, 0, "", 'a'), (DEFAULT_PAGE, None));
        assert_eq!(paging(&mut v, 10, "a42", 'a'), (10, Some(42)));
        assert!(v.finish().is_ok());
        let mut v = Violations::new();
        paging(&mut v, MAX_PAGE + 1, "b42", 'a');
        let err = format!("{:?}", v.finish().unwrap_err());
        assert!(err.contains("page_size") && err.contains("page_token"), "{err}");
    }

    #[test]
    fn a_token_names_a_position_in_digits_only() {
        assert_eq!(position("42"), Some(42));
        assert_eq!(position("0"), Some(0));
        for refused in ["", "-1", "+7", " 7", "7 ", "1e3", "99999999999999999999"] {
            assert_eq!(position(refused), None, "{refused:?}");
        }
    }
}
