//! The `redis` service (Redis Streams). Its Markdown install docs are the doc comments
//! on the struct registered below; `lookout docs redis` shows them.

use std::net::SocketAddr;

use ::redis::streams::StreamMaxlen;
use ::redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use lookout::prelude::*;
use lookout::request::publish::{
    Broker, BrokerRoute, FORMAT_OPTION, PublishError, PublishTry, Publisher,
};

lookout::service! {
    /// Redis Streams
    ///
    /// Appends each event to a Redis stream with `XADD` (Redis 5 or later), where any
    /// number of consumer groups can read it. Each entry has the fields `content-type`,
    /// `lookout-delivery-id` (the same when Lookout tries again, so consumers can drop
    /// duplicates), `lookout-event` (`Item.created`) and `body`: the payload as the
    /// product sent it, or the rendered message with `format`.
    ///
    /// 1. Create a user for Lookout that may only append to the stream, e.g.
    ///    `ACL SETUSER lookout on >a-long-password ~sprintly +xadd +hello +auth +select`
    ///    (or use the `default` user's `requirepass` password).
    /// 2. Set `url` to `redis://lookout:PASSWORD@redis.example.com:6379/0`: the user, its
    ///    password (percent-encoded), the host, the port and the database number (`0`
    ///    when left out). `redis://:PASSWORD@host` logs in as the default user. Lookout
    ///    treats the whole URL as a secret.
    /// 3. Set `stream` to the stream's key, a template where `{product}` is the
    ///    product's id and `{model}` and `{action}` the event's, lowercased (`sprintly`,
    ///    or `sprintly:{product}` for one stream per product).
    /// 4. Optionally set `maxlen` to keep the stream at about that many entries: each
    ///    `XADD` trims the oldest with `MAXLEN ~ n` (approximate trimming, which Redis
    ///    does cheaply, whole nodes at a time).
    /// 5. Read it with `XREAD` or a consumer group: `XGROUP CREATE sprintly workers $
    ///    MKSTREAM`, then `XREADGROUP GROUP workers w1 STREAMS sprintly >`.
    ///
    /// A delivery succeeds once Redis answers with the entry's id. Each delivery opens
    /// its own connection. Plain TCP only: `rediss://` (TLS) is not supported yet.
    pub struct Redis;

    category: Broker,
    events: &["*"],
    // The largest string a Redis stream field may hold: 512 MB.
    limits: Limits::refuse(&[
        Limit::body(536_870_912, Unit::Bytes),
    ]),
    schema: Schema::new(OPTIONS),
    example: r#"url = "redis://lookout:redis-password-for-docs@redis.example.com:6379/0"
stream = "sprintly"
maxlen = 100000"#,
}

const OPTIONS: &[OptionSpec] = &[
    Broker::url_option(
        "The server, `redis://user:password@host:6379/db` (`redis://:password@host` for the default user).",
    ),
    REDIS.route_option(
        "The stream's key: a template with `{product}`, `{model}` and `{action}`.",
        "sprintly",
    ),
    OptionSpec::integer(
        "maxlen",
        "Keep about this many entries (`XADD … MAXLEN ~ n`); unset keeps them all.",
    )
    .public()
    .range(1, i64::MAX)
    .optional(),
    FORMAT_OPTION,
];

const REDIS: Broker = Broker {
    protocol: "REDIS",
    schemes: &["redis"],
    port: 6379,
    route: "stream",
};

impl Service for Redis {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        REDIS.build(job, |route| stream(job, route))
    }
}

/// The publisher for `route`: the database in the URL's path, and the trimming; and the
/// target as reports show it.
fn stream(job: &Job<'_>, route: BrokerRoute) -> Result<(String, Stream), BuildError> {
    let db = match route.broker.path.as_str() {
        "" => 0,
        path => path
            .parse()
            .map_err(|_| BuildError::Invalid("url: the path must be a database number".into()))?,
    };
    let maxlen = job.options.integer("maxlen").map(|n| n as usize);
    let mut shown = format!("{}/{db}?stream={}", route.broker.origin(), route.name);
    if let Some(maxlen) = maxlen {
        shown.push_str(&format!("&maxlen=~{maxlen}"));
    }
    Ok((shown, Stream { route, db, maxlen }))
}

/// One stream to append to (the route's name is its key), with the credentials to log
/// in.
struct Stream {
    route: BrokerRoute,
    db: i64,
    maxlen: Option<usize>,
}

#[lookout::async_trait]
impl Publisher for Stream {
    async fn publish_once(&self, to: PublishTry<'_>) -> Result<(), PublishError> {
        let client = ::redis::Client::open(self.connection_info(to.address)?)
            .map_err(|e| failure("bad connection settings", &e))?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(to.timeout))
            .set_response_timeout(Some(to.timeout));
        let mut connection = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| failure("cannot connect", &e))?;
        let body = to.message.body.to_wire();
        let mut fields: Vec<(&str, &[u8])> = to
            .message
            .headers()
            .iter()
            .map(|(name, value)| (*name, value.as_bytes()))
            .collect();
        fields.push(("body", &body));
        let mut xadd = ::redis::cmd("XADD");
        xadd.arg(&self.route.name);
        if let Some(maxlen) = self.maxlen {
            xadd.arg(StreamMaxlen::Approx(maxlen));
        }
        xadd.arg("*").arg(&fields);
        let _entry: String = xadd
            .query_async(&mut connection)
            .await
            .map_err(|e| failure("XADD failed", &e))?;
        Ok(())
    }
}

impl Stream {
    /// The server at the checked address (never its name: no second lookup).
    fn connection_info(
        &self,
        address: SocketAddr,
    ) -> Result<::redis::ConnectionInfo, PublishError> {
        let mut login = RedisConnectionInfo::default().set_db(self.db);
        let broker = &self.route.broker;
        if !broker.username.is_empty() {
            login = login.set_username(&broker.username);
        }
        if !broker.password.is_empty() {
            login = login.set_password(&broker.password);
        }
        let info = ConnectionAddr::Tcp(address.ip().to_string(), address.port())
            .into_connection_info()
            .map_err(|e| failure("bad address", &e))?;
        Ok(info.set_redis_settings(login))
    }
}

/// A Redis error as a failure: a connection that failed, broke or timed out, and a
/// server still loading or busy, are worth another try; a refused login or command is
/// final.
fn failure(what: &str, err: &::redis::RedisError) -> PublishError {
    let reason = format!("{what}: {err}");
    let busy = matches!(
        err.code(),
        Some("LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN")
    );
    if err.is_io_error()
        || err.is_connection_refusal()
        || err.is_connection_dropped()
        || err.is_timeout()
        || busy
    {
        PublishError::transient(reason)
    } else {
        PublishError::refused(reason)
    }
}

#[cfg(test)]
mod tests {
    use lookout_testkit::fixture_json;

    use super::*;

    #[test]
    fn the_database_is_the_path_and_must_be_a_number() {
        let preview = |url: &str| {
            let options = json!({ "url": url, "stream": "sprintly:{product}", "maxlen": 1000 });
            let instance =
                lookout::Instance::new("r", "redis", options.as_object().unwrap()).unwrap();
            let event = Event::parse(&fixture_json("item")).unwrap();
            lookout::dispatch::preview_one(&event, &instance)
        };
        let shown = preview("redis://:s3cret-pass@cache.example.com/2");
        assert_eq!(
            shown.requests[0].url,
            "redis://cache.example.com:6379/2?stream=sprintly:1111&maxlen=~1000"
        );
        let refused = preview("redis://:s3cret-pass@cache.example.com/zero");
        assert!(
            format!("{:?}", refused.not_sent).contains("url: the path must be a database number"),
            "{refused:?}"
        );
    }
}
