//! Fetching `https://` (and `http://`) content named by manifest fields, at build time only.

use std::time::Duration;

use cluster_image::manifest::Fetch;

pub struct HttpFetch {
    client: reqwest::blocking::Client,
}

impl HttpFetch {
    pub fn new() -> anyhow::Result<HttpFetch> {
        registry::install_crypto_provider();
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("tele/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(HttpFetch { client })
    }
}

impl Fetch for HttpFetch {
    fn fetch(&self, url: &str) -> Result<Vec<u8>, String> {
        let response = self.client.get(url).send().map_err(|e| describe(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("the server answered {status}"));
        }
        response
            .bytes()
            .map(|b| b.to_vec())
            .map_err(|e| describe(&e))
    }
}

/// reqwest's top-level message is vague ("error sending request"); the cause says what happened.
fn describe(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        out = format!("{out}: {s}");
        source = s.source();
    }
    out
}
