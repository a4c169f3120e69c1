//! Categories, actions and the per-category policy.

use std::fmt;
use std::str::FromStr;

/// What to do with a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Replace the match with `[REDACTED:<LABEL>]`.
    Redact,
    /// Stop the response: nothing further is emitted.
    Block,
    /// Report the finding, pass the text through unchanged.
    Log,
    /// Detector disabled (not even compiled into the guard).
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Category {
    Canary,
    SystemPromptLeak,
    PrivateKey,
    AwsAccessKey,
    GitHubToken,
    StripeKey,
    OpenAiKey,
    SlackToken,
    GoogleApiKey,
    Jwt,
    GenericSecret,
    Email,
    PaymentCard,
    Ssn,
    Iban,
    Phone,
    IpAddress,
}

/// Groups that share one setting (`OUTPUT_<GROUP>_ACTION`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CategoryGroup {
    Leak,
    Secret,
    Pii,
    Network,
}

impl Category {
    pub const ALL: [Category; 17] = [
        Self::Canary,
        Self::SystemPromptLeak,
        Self::PrivateKey,
        Self::AwsAccessKey,
        Self::GitHubToken,
        Self::StripeKey,
        Self::OpenAiKey,
        Self::SlackToken,
        Self::GoogleApiKey,
        Self::Jwt,
        Self::GenericSecret,
        Self::Email,
        Self::PaymentCard,
        Self::Ssn,
        Self::Iban,
        Self::Phone,
        Self::IpAddress,
    ];

    /// Upper-case label used in redactions, metrics and settings.
    pub fn label(self) -> &'static str {
        match self {
            Self::Canary => "CANARY",
            Self::SystemPromptLeak => "SYSTEM_PROMPT",
            Self::PrivateKey => "PRIVATE_KEY",
            Self::AwsAccessKey => "AWS_KEY",
            Self::GitHubToken => "GITHUB_TOKEN",
            Self::StripeKey => "STRIPE_KEY",
            Self::OpenAiKey => "OPENAI_KEY",
            Self::SlackToken => "SLACK_TOKEN",
            Self::GoogleApiKey => "GOOGLE_API_KEY",
            Self::Jwt => "JWT",
            Self::GenericSecret => "SECRET",
            Self::Email => "EMAIL",
            Self::PaymentCard => "CARD",
            Self::Ssn => "SSN",
            Self::Iban => "IBAN",
            Self::Phone => "PHONE",
            Self::IpAddress => "IP",
        }
    }

    /// The replacement text for `Action::Redact`.
    pub fn redaction(self) -> &'static str {
        match self {
            Self::Canary => "[REDACTED:CANARY]",
            Self::SystemPromptLeak => "[REDACTED:SYSTEM_PROMPT]",
            Self::PrivateKey => "[REDACTED:PRIVATE_KEY]",
            Self::AwsAccessKey => "[REDACTED:AWS_KEY]",
            Self::GitHubToken => "[REDACTED:GITHUB_TOKEN]",
            Self::StripeKey => "[REDACTED:STRIPE_KEY]",
            Self::OpenAiKey => "[REDACTED:OPENAI_KEY]",
            Self::SlackToken => "[REDACTED:SLACK_TOKEN]",
            Self::GoogleApiKey => "[REDACTED:GOOGLE_API_KEY]",
            Self::Jwt => "[REDACTED:JWT]",
            Self::GenericSecret => "[REDACTED:SECRET]",
            Self::Email => "[REDACTED:EMAIL]",
            Self::PaymentCard => "[REDACTED:CARD]",
            Self::Ssn => "[REDACTED:SSN]",
            Self::Iban => "[REDACTED:IBAN]",
            Self::Phone => "[REDACTED:PHONE]",
            Self::IpAddress => "[REDACTED:IP]",
        }
    }

    pub fn group(self) -> CategoryGroup {
        match self {
            Self::Canary | Self::SystemPromptLeak => CategoryGroup::Leak,
            Self::Email | Self::PaymentCard | Self::Ssn | Self::Iban | Self::Phone => {
                CategoryGroup::Pii
            }
            Self::IpAddress => CategoryGroup::Network,
            _ => CategoryGroup::Secret,
        }
    }

    fn index(self) -> usize {
        // Declaration order equals `ALL` order, which a test checks.
        self as usize
    }
}

/// Per-category actions plus the prompt-overlap threshold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputPolicy {
    actions: [Action; 17],
    /// Verbatim words shared with the system prompt that count as a leak.
    pub prompt_overlap_min_words: usize,
}

impl Default for OutputPolicy {
    /// Leaks and private keys block; other credentials and PII are redacted (the rest of the
    /// answer stays useful, the secret is gone); IP addresses are only logged, since answers
    /// about networking are full of them and most are not sensitive.
    fn default() -> Self {
        let mut p = Self {
            actions: [Action::Redact; 17],
            prompt_overlap_min_words: 12,
        };
        p.set_group(CategoryGroup::Leak, Action::Block);
        p.set(Category::PrivateKey, Action::Block);
        p.set(Category::IpAddress, Action::Log);
        p
    }
}

impl OutputPolicy {
    pub fn action(&self, c: Category) -> Action {
        self.actions[c.index()]
    }

    /// `Redact` on `SystemPromptLeak` is stored as `Block`: a paraphrase-adjacent run of prompt
    /// words has no clean span to cut out, and the run is only known once it is long enough.
    pub fn set(&mut self, c: Category, a: Action) -> &mut Self {
        let a = if c == Category::SystemPromptLeak && a == Action::Redact {
            Action::Block
        } else {
            a
        };
        self.actions[c.index()] = a;
        self
    }

    pub fn with(mut self, c: Category, a: Action) -> Self {
        self.set(c, a);
        self
    }

    pub fn set_group(&mut self, g: CategoryGroup, a: Action) -> &mut Self {
        for c in Category::ALL.into_iter().filter(|c| c.group() == g) {
            self.set(c, a);
        }
        self
    }
}

/// A setting value that is not one of the accepted names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub value: String,
    pub accepted: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid value {:?}; accepted: {}",
            self.value, self.accepted
        )
    }
}

impl std::error::Error for ParseError {}

impl FromStr for Action {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "redact" => Ok(Self::Redact),
            "block" => Ok(Self::Block),
            "log" => Ok(Self::Log),
            "off" => Ok(Self::Off),
            _ => Err(ParseError {
                value: s.to_owned(),
                accepted: "redact, block, log, off",
            }),
        }
    }
}

impl FromStr for Category {
    type Err = ParseError;
    /// Accepts the label in any case (`email`, `AWS_KEY`).
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let up = s.trim().to_ascii_uppercase();
        Self::ALL.into_iter().find(|c| c.label() == up).ok_or_else(|| ParseError {
            value: s.to_owned(),
            accepted: "CANARY, SYSTEM_PROMPT, PRIVATE_KEY, AWS_KEY, GITHUB_TOKEN, STRIPE_KEY, OPENAI_KEY, SLACK_TOKEN, GOOGLE_API_KEY, JWT, SECRET, EMAIL, CARD, SSN, IBAN, PHONE, IP",
        })
    }
}
