//! What an operator sees of personal data unless they ask for it (SPEC §8): a phone as
//! its last four digits, an email as its first letter and domain, a text as its length.
/// `+16195550111` → `***0111`.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    let tail: String = digits[digits.len().saturating_sub(4)..].iter().collect();
    format!("***{tail}")
}

/// `jane@example.com` → `j***@example.com`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// A message body: only its length.
pub fn mask_text(text: &str) -> String {
    format!("[{} characters]", text.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask_phone("+16195550111"), "***0111");
        assert_eq!(mask_phone("12"), "***12");
        assert_eq!(mask_email("jane@example.com"), "j***@example.com");
        assert_eq!(mask_email("nope"), "***");
        assert_eq!(mask_text("STOP ✋"), "[6 characters]");
    }
}
