//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the operator API (`/api/v1`) and
//! the webhooks (`/webhooks`).
//!
//! Nothing in it is written by hand twice: the schemas are generated (schemars, JSON Schema
//! 2020-12, which OpenAPI 3.1 uses as it is) from the DTOs the handlers serialize and the
//! request types they parse, and [`routes`] is the table that names each operation — method,
//! path, query type, body type, answers per status, security. The document is committed as
//! `schemas/openapi.json` (written by `switchboard schema`); a test fails when it is stale, and
//! another checks the table against the router (every documented operation answers, no route is
//! left out). Reading it needs no token.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use axum::Json;
use axum::response::{IntoResponse, Response};

use super::{activities, api, chat, emails, error, leads, me, records, webhooks};

/// The file name of the committed document under `schemas/`.
pub const FILE: &str = "openapi.json";

/// A schema of a type, as a `$ref` into `components/schemas` when it is a named type.
type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// The top-level schema of a query-string type (its properties become parameters).
type QueryFn = fn() -> Schema;

fn query<T: JsonSchema>() -> Schema {
    SchemaGenerator::new(SchemaSettings::draft2020_12()).into_root_schema_for::<T>()
}

/// Who may call an operation.
#[derive(Clone, Copy)]
enum Auth {
    /// The operator API: a User's API token, or a JWT of the identity server.
    Operator,
    /// No credentials.
    Public,
    /// A webhook: the provider's token or signature (a scheme in `components`).
    Webhook(&'static str),
}

/// A request body.
enum Body {
    /// `application/json` of a type.
    Json(SchemaFn),
    /// A JSON merge patch (RFC 7396) of a type; `application/json` is taken too.
    MergePatch(SchemaFn),
    /// A provider's JSON, described in words (its schema is the provider's).
    Foreign(&'static str),
    /// `application/x-www-form-urlencoded` parameters, described in words.
    Form(&'static str),
}

/// What an answer carries.
enum Content {
    Json(SchemaFn),
    /// A media type and a description of the bytes.
    Other(&'static str, Value),
    Empty,
}

struct Answer {
    status: u16,
    description: &'static str,
    content: Content,
    /// Response headers, by name, with a description.
    headers: &'static [(&'static str, &'static str)],
}

fn ok(status: u16, description: &'static str, content: Content) -> Answer {
    Answer {
        status,
        description,
        content,
        headers: &[],
    }
}

/// A parameter with a string value that no query type describes (a provider's query string, a
/// header).
struct Param {
    name: &'static str,
    location: &'static str,
    required: bool,
    description: &'static str,
}

/// One operation of the table.
struct Route {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    query: Vec<QueryFn>,
    params: Vec<Param>,
    body: Option<Body>,
    answers: Vec<Answer>,
    /// Error statuses besides those every operation of its kind has (401 for the operator API).
    errors: &'static [u16],
    auth: Auth,
}

impl Route {
    fn new(method: &'static str, path: &'static str, id: &'static str, tag: &'static str) -> Route {
        Route {
            method,
            path,
            id,
            tag,
            summary: "",
            query: Vec::new(),
            params: Vec::new(),
            body: None,
            answers: Vec::new(),
            errors: &[],
            auth: Auth::Operator,
        }
    }
    fn summary(mut self, summary: &'static str) -> Route {
        self.summary = summary;
        self
    }
    fn query(mut self, query: QueryFn) -> Route {
        self.query.push(query);
        self
    }
    fn param(mut self, param: Param) -> Route {
        self.params.push(param);
        self
    }
    fn body(mut self, body: Body) -> Route {
        self.body = Some(body);
        self
    }
    fn answer(mut self, answer: Answer) -> Route {
        self.answers.push(answer);
        self
    }
    fn json(self, status: u16, description: &'static str, schema: SchemaFn) -> Route {
        self.answer(ok(status, description, Content::Json(schema)))
    }
    fn errors(mut self, errors: &'static [u16]) -> Route {
        self.errors = errors;
        self
    }
    fn auth(mut self, auth: Auth) -> Route {
        self.auth = auth;
        self
    }
}

const ETAG: (&str, &str) = (
    "ETag",
    "The record's strong ETag; send it back in `If-Match`.",
);
const IF_MATCH: Param = Param {
    name: "If-Match",
    location: "header",
    required: false,
    description: "The ETag the change is based on; a stale one answers 412 `stale`.",
};

/// Every operation under `/api/v1` and `/webhooks`, in the router's order.
fn routes() -> Vec<Route> {
    use Auth::{Public, Webhook};
    let list_of = |r: Route, q: QueryFn, s: SchemaFn| {
        r.query(of_page)
            .query(q)
            .json(200, "One page.", s)
            .errors(&[400])
    };
    fn of_page() -> Schema {
        query::<api::Page>()
    }
    vec![
        // The objects of the running configuration.
        Route::new("get", "/api/v1/objects", "listObjects", "objects")
            .summary("The status view of every object of the running configuration")
            .query(of_page)
            .json(200, "One page of objects.", of::<api::List<api::ObjectDto>>)
            .errors(&[400]),
        Route::new(
            "post",
            "/api/v1/objects/{kind}/{name}/sync",
            "syncObject",
            "objects",
        )
        .summary("Asks for a sync of one object now")
        .json(202, "The sync is queued.", of::<api::Queued>)
        .errors(&[403, 404, 409]),
        // Mail.
        Route::new("get", "/api/v1/emails", "listEmails", "mail")
            .summary("Stored e-mails the caller may read, newest first")
            .query(query::<emails::EmailsQuery>)
            .json(200, "One page of e-mails.", of::<emails::EmailList>)
            .errors(&[400, 403, 404]),
        Route::new("post", "/api/v1/emails", "sendEmail", "mail")
            .summary("Sends an e-mail from one of the caller's mailboxes")
            .body(Body::Json(of::<emails::SendRequest>))
            .json(
                202,
                "Stored and queued for delivery.",
                of::<emails::EmailDto>,
            )
            .errors(&[400, 403, 404, 409, 413, 422]),
        // Chat.
        Route::new(
            "post",
            "/webhooks/api/{channel}",
            "apiChannelInbound",
            "webhooks",
        )
        .summary("A visitor's message to an api channel")
        .body(Body::Json(of::<crate::chat::channels::api::InboundBody>))
        .json(
            200,
            "Stored (also for a repeated messageId).",
            of::<webhooks::ChatIdDto>,
        )
        .errors(&[400, 401, 403, 404, 413, 503])
        .auth(Webhook("apiChannelToken")),
        Route::new(
            "post",
            "/webhooks/telegram/{channel}",
            "telegramInbound",
            "webhooks",
        )
        .summary("A Telegram Bot API update")
        .body(Body::Foreign("A Telegram `Update` object (Bot API)."))
        .answer(ok(
            200,
            "Stored, a repeat, or an update without a message.",
            Content::Empty,
        ))
        .errors(&[400, 401, 403, 404, 413, 503])
        .auth(Webhook("telegramSecretToken")),
        Route::new(
            "post",
            "/webhooks/twilio/{channel}",
            "twilioInbound",
            "webhooks",
        )
        .summary("A Twilio message (SMS or WhatsApp)")
        .body(Body::Form(
            "Twilio's webhook parameters (`MessageSid`, `From`, `Body`, ...).",
        ))
        .answer(ok(
            200,
            "Stored; an empty TwiML answer.",
            Content::Other("text/xml", json!({"type": "string"})),
        ))
        .errors(&[400, 401, 403, 404, 413, 503])
        .auth(Webhook("twilioSignature")),
        Route::new("get", "/webhooks/messenger", "messengerVerify", "webhooks")
            .summary("Meta's subscription check")
            .param(Param {
                name: "hub.mode",
                location: "query",
                required: false,
                description: "`subscribe`.",
            })
            .param(Param {
                name: "hub.verify_token",
                location: "query",
                required: false,
                description: "A messenger channel's `verifyToken`.",
            })
            .param(Param {
                name: "hub.challenge",
                location: "query",
                required: false,
                description: "Answered back as it is.",
            })
            .answer(ok(
                200,
                "The challenge.",
                Content::Other("text/plain", json!({"type": "string"})),
            ))
            .errors(&[403])
            .auth(Public),
        Route::new(
            "post",
            "/webhooks/messenger",
            "messengerInbound",
            "webhooks",
        )
        .summary("Messenger events of a page")
        .body(Body::Foreign(
            "Meta's webhook event (`object: page`, `entry`).",
        ))
        .answer(ok(
            200,
            "Received.",
            Content::Other("text/plain", json!({"const": "EVENT_RECEIVED"})),
        ))
        .errors(&[400, 401, 403, 413, 503])
        .auth(Webhook("messengerSignature")),
        list_of(
            Route::new("get", "/api/v1/chats", "listChats", "chat")
                .summary("The chats the caller may see, each with its newest messages"),
            query::<chat::ChatQuery>,
            of::<api::List<chat::ChatDto>>,
        ),
        Route::new("get", "/api/v1/chats/{id}", "getChat", "chat")
            .summary("A chat with one page of its messages and its actions")
            .query(of_page)
            .json(200, "The chat.", of::<chat::ChatDto>)
            .errors(&[400, 404]),
        Route::new("post", "/api/v1/chats/{id}/accept", "acceptChat", "chat")
            .summary("Accepts an offered chat")
            .json(
                200,
                "The chat, now active with the caller.",
                of::<chat::ChatDto>,
            )
            .errors(&[403, 404, 409, 503]),
        Route::new(
            "post",
            "/api/v1/chats/{id}/complete",
            "completeChat",
            "chat",
        )
        .summary("Completes an active chat")
        .json(200, "The chat, completed.", of::<chat::ChatDto>)
        .errors(&[403, 404, 409, 503]),
        Route::new(
            "post",
            "/api/v1/chats/{id}/messages",
            "postChatMessage",
            "chat",
        )
        .summary("Answers in a chat")
        .body(Body::Json(of::<chat::NewMessageDto>))
        .json(
            202,
            "Stored; delivery to the channel follows.",
            of::<chat::MessageDto>,
        )
        .errors(&[400, 403, 404, 409, 413, 415, 503]),
        Route::new(
            "post",
            "/api/v1/chats/{id}/actions/{action}",
            "runChatAction",
            "chat",
        )
        .summary("Runs a chat action (CRM case, webhook)")
        .json(200, "Done.", of::<chat::ActionRunDto>)
        .json(
            202,
            "A webhook is being delivered.",
            of::<chat::ActionRunDto>,
        )
        .errors(&[403, 404, 409, 503]),
        list_of(
            Route::new("get", "/api/v1/cases", "listCases", "chat")
                .summary("Cases created from chats"),
            of_page,
            of::<api::List<chat::CaseDto>>,
        ),
        Route::new(
            "get",
            "/api/v1/notification-sound",
            "notificationSound",
            "chat",
        )
        .summary("The sound played on a new offer")
        .answer(ok(
            200,
            "The configured sound file.",
            Content::Other(
                "audio/mpeg",
                json!({"type": "string", "contentMediaType": "audio/mpeg"}),
            ),
        ))
        .errors(&[404]),
        list_of(
            Route::new("get", "/api/v1/operators", "listOperators", "chat")
                .summary("Operators with their status and load"),
            of_page,
            of::<api::List<chat::OperatorDto>>,
        ),
        Route::new(
            "put",
            "/api/v1/operators/me/status",
            "putOperatorStatus",
            "chat",
        )
        .summary("Sets the caller's own status")
        .body(Body::Json(of::<chat::StatusDto>))
        .json(200, "The caller as an operator.", of::<chat::OperatorDto>)
        .errors(&[400, 403, 413, 415]),
        list_of(
            Route::new("get", "/api/v1/quick-replies", "listQuickReplies", "chat")
                .summary("Quick replies by language and queue"),
            query::<chat::QuickReplyQuery>,
            of::<api::List<chat::QuickReplyDto>>,
        ),
        Route::new("get", "/api/v1/events", "events", "chat")
            .summary("The caller's events as server-sent events")
            .answer(ok(
                200,
                "An endless `text/event-stream`: `chat.offered`, `chat.assigned`, `chat.message`, \
                 `chat.completed`, `chat.action`, `operator.status`, `record.changed`, \
                 `oauth.reauth-needed`; each `data:` is a JSON object.",
                Content::Other("text/event-stream", json!({"type": "string"})),
            )),
        Route::new("get", "/api/v1/me", "me", "chat")
            .summary("The caller: name, rights, status, queues")
            .json(200, "The caller.", of::<me::MeDto>),
        list_of(
            Route::new("get", "/api/v1/chat-actions", "listChatActions", "chat")
                .summary("The chat actions the caller may run"),
            query::<me::ActionQuery>,
            of::<api::List<me::ChatActionDto>>,
        ),
        // Records.
        list_of(
            Route::new("get", "/api/v1/contacts", "listContacts", "records")
                .summary("Contacts the caller may see"),
            query::<records::ContactFilter>,
            of::<api::List<records::ContactDto>>,
        ),
        Route::new("post", "/api/v1/contacts", "createContact", "records")
            .summary("Creates a contact")
            .body(Body::Json(of::<records::ContactWrite>))
            .answer(created(of::<records::ContactDto>))
            .errors(&[400, 409, 413, 415, 422]),
        Route::new("get", "/api/v1/contacts/{id}", "getContact", "records")
            .summary("A contact")
            .answer(with_etag(of::<records::ContactDto>))
            .errors(&[404]),
        Route::new("patch", "/api/v1/contacts/{id}", "patchContact", "records")
            .summary("Changes a contact (JSON merge patch)")
            .param(IF_MATCH)
            .body(Body::MergePatch(of::<records::ContactWrite>))
            .answer(with_etag(of::<records::ContactDto>))
            .errors(&[400, 404, 409, 412, 413, 415, 422]),
        Route::new(
            "delete",
            "/api/v1/contacts/{id}",
            "deleteContact",
            "records",
        )
        .summary("Deletes a contact")
        .param(IF_MATCH)
        .answer(ok(204, "Deleted.", Content::Empty))
        .errors(&[404, 412]),
        list_of(
            Route::new("get", "/api/v1/accounts", "listAccounts", "records").summary("Accounts"),
            query::<records::AccountFilter>,
            of::<api::List<records::AccountDto>>,
        ),
        Route::new("post", "/api/v1/accounts", "createAccount", "records")
            .summary("Creates an account")
            .body(Body::Json(of::<records::AccountWrite>))
            .answer(created(of::<records::AccountDto>))
            .errors(&[400, 409, 413, 415, 422]),
        Route::new("get", "/api/v1/accounts/{id}", "getAccount", "records")
            .summary("An account")
            .answer(with_etag(of::<records::AccountDto>))
            .errors(&[404]),
        Route::new("patch", "/api/v1/accounts/{id}", "patchAccount", "records")
            .summary("Changes an account (JSON merge patch)")
            .param(IF_MATCH)
            .body(Body::MergePatch(of::<records::AccountWrite>))
            .answer(with_etag(of::<records::AccountDto>))
            .errors(&[400, 404, 409, 412, 413, 415, 422]),
        Route::new(
            "delete",
            "/api/v1/accounts/{id}",
            "deleteAccount",
            "records",
        )
        .summary("Deletes an account (administrators)")
        .param(IF_MATCH)
        .answer(ok(204, "Deleted.", Content::Empty))
        .errors(&[403, 404, 412]),
        list_of(
            Route::new("get", "/api/v1/activities", "listActivities", "records")
                .summary("Meetings and tasks, by start (or due) time"),
            query::<activities::ActivityFilter>,
            of::<api::List<activities::ActivityDto>>,
        ),
        Route::new("post", "/api/v1/activities", "createActivity", "records")
            .summary("Creates a meeting or a task")
            .body(Body::Json(of::<activities::ActivityWrite>))
            .answer(created(of::<activities::ActivityDto>))
            .errors(&[400, 403, 409, 413, 415, 422]),
        Route::new("get", "/api/v1/activities/{id}", "getActivity", "records")
            .summary("An activity")
            .answer(with_etag(of::<activities::ActivityDto>))
            .errors(&[404]),
        Route::new(
            "patch",
            "/api/v1/activities/{id}",
            "patchActivity",
            "records",
        )
        .summary("Changes an activity (JSON merge patch)")
        .param(IF_MATCH)
        .body(Body::MergePatch(of::<activities::ActivityWrite>))
        .answer(with_etag(of::<activities::ActivityDto>))
        .errors(&[400, 403, 404, 409, 412, 413, 415, 422]),
        Route::new(
            "delete",
            "/api/v1/activities/{id}",
            "deleteActivity",
            "records",
        )
        .summary("Deletes an activity")
        .param(IF_MATCH)
        .answer(ok(204, "Deleted.", Content::Empty))
        .errors(&[403, 404, 412]),
        list_of(
            Route::new("get", "/api/v1/leads", "listLeads", "records")
                .summary("Leads of the integrations the caller is notified of"),
            query::<records::LeadFilter>,
            of::<api::List<records::LeadDto>>,
        ),
        Route::new("get", "/api/v1/leads/{id}", "getLead", "records")
            .summary("A lead")
            .answer(with_etag(of::<records::LeadDto>))
            .errors(&[404]),
        // LinkedIn lead generation.
        Route::new("get", "/webhooks/linkedin", "linkedinChallenge", "webhooks")
            .summary("LinkedIn's validation of the webhook")
            .param(Param {
                name: "challengeCode",
                location: "query",
                required: true,
                description: "Answered with its HMAC-SHA256 under the app's client secret.",
            })
            .json(200, "The challenge answered.", of::<leads::ChallengeDto>)
            .errors(&[400, 404])
            .auth(Public),
        Route::new("post", "/webhooks/linkedin", "linkedinInbound", "webhooks")
            .summary("A LinkedIn lead notification")
            .body(Body::Foreign("LinkedIn's lead notification."))
            .json(
                200,
                "Stored (`accepted`, `duplicate`) or deliberately `ignored`.",
                of::<leads::ReceivedDto>,
            )
            .errors(&[400, 401, 403, 404, 413, 503])
            .auth(Webhook("linkedinSignature")),
        Route::new(
            "get",
            "/api/v1/lead-integrations/{name}/log",
            "leadIntegrationLog",
            "records",
        )
        .summary("A lead integration's recent log")
        .json(200, "The newest entries.", of::<leads::LogDto>)
        .errors(&[404]),
        Route::new(
            "post",
            "/api/v1/lead-integrations/{name}/backfill",
            "leadBackfill",
            "records",
        )
        .summary("Asks for the leads of a past period (administrators)")
        .body(Body::Json(of::<leads::BackfillRequest>))
        .json(202, "Queued.", of::<leads::BackfillDto>)
        .errors(&[400, 403, 404, 409, 413, 415, 422]),
        Route::new(
            "get",
            "/api/v1/lead-integrations/{name}/backfills/{id}",
            "leadBackfillStatus",
            "records",
        )
        .summary("Where a backfill stands (administrators)")
        .json(200, "The backfill.", of::<leads::BackfillDto>)
        .errors(&[403, 404]),
        // This document.
        Route::new("get", "/api/v1/openapi.json", "openapi", "meta")
            .summary("This document (no token needed)")
            .answer(ok(
                200,
                "The OpenAPI 3.1 document.",
                Content::Other("application/json", json!({"type": "object"})),
            ))
            .auth(Public),
    ]
}

fn created(schema: SchemaFn) -> Answer {
    Answer {
        status: 201,
        description: "Created.",
        content: Content::Json(schema),
        headers: &[ETAG, ("Location", "The path of the new record.")],
    }
}

fn with_etag(schema: SchemaFn) -> Answer {
    Answer {
        status: 200,
        description: "The record.",
        content: Content::Json(schema),
        headers: &[ETAG],
    }
}

/// What an error status means, for every operation that can answer it.
fn error_description(status: u16) -> &'static str {
    match status {
        400 => "Malformed: a bad query string, body or identifier.",
        401 => "No credentials, or wrong ones.",
        403 => {
            "Not allowed to the caller (or a deactivated channel, a signature that does not match)."
        }
        404 => "No such thing, or not visible to the caller.",
        409 => "Conflicts with the current state (`code` says how).",
        412 => "`If-Match` names an older version (`stale`).",
        413 => "The body is too large.",
        415 => "The body is not JSON.",
        422 => "A field's value is not acceptable (the message names it).",
        503 => "Not now: a secret is unreadable, or the state file's disk is full (`Retry-After`).",
        _ => "An error.",
    }
}

fn error_answer(generator: &mut SchemaGenerator, description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": of::<error::Body<'static>>(generator)}}
    })
}

/// Query parameters from the properties of a query type's schema.
fn query_params(schema: &Schema) -> Vec<Value> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    properties
        .iter()
        .map(|(name, property)| {
            let mut property = property.clone();
            let description = property
                .as_object_mut()
                .and_then(|p| p.remove("description"));
            // A query parameter is absent or a value: never null.
            if let Some(Value::Array(types)) = property.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types[0].clone();
                    property["type"] = only;
                }
            }
            // Rust's integer formats (`uint`, ...) say nothing to a client; `date-time` does.
            if let Some(p) = property.as_object_mut()
                && p.get("format").is_some_and(|f| f != "date-time")
            {
                p.remove("format");
            }
            let mut param = json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": property,
            });
            if let Some(d) = description {
                param["description"] = d;
            }
            param
        })
        .collect()
}

/// The parameters named in a path template.
fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let example = match name {
                "kind" => "ChatQueue",
                "name" => "support",
                "channel" => "web",
                "action" => "create-case",
                _ => "1",
            };
            json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": {"type": "string"},
                "example": example,
            })
        })
        .collect()
}

fn security(auth: Auth) -> Value {
    match auth {
        Auth::Operator => json!([{"apiToken": []}, {"identityServer": []}]),
        Auth::Public => json!([]),
        Auth::Webhook(scheme) => json!([{ scheme: [] }]),
    }
}

fn security_schemes() -> Value {
    json!({
        "apiToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "A User's API token (`Authorization: Bearer <token>`); the User's \
                `apiTokenSha256` holds its SHA-256."
        },
        "identityServer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "Only when `Settings.identityServer` is configured: a JWT of that \
                issuer (RS256 or ES256, `aud` = its clientId), for the User whose email is the \
                token's `email` claim."
        },
        "apiChannelToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "An api ChatChannel's `inboundToken`."
        },
        "telegramSecretToken": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Telegram-Bot-Api-Secret-Token",
            "description": "The secret token given to Telegram's setWebhook for the channel."
        },
        "twilioSignature": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Twilio-Signature",
            "description": "Base64 HMAC-SHA1, under the channel's auth token, of the webhook URL \
                (from `Settings.siteUrl`) followed by the sorted form parameters."
        },
        "messengerSignature": {
            "type": "apiKey",
            "in": "header",
            "name": "X-Hub-Signature-256",
            "description": "`sha256=` and the hex HMAC-SHA256 of the body under a messenger \
                channel's app secret."
        },
        "linkedinSignature": {
            "type": "apiKey",
            "in": "header",
            "name": "X-LI-Signature",
            "description": "The hex HMAC-SHA256 of the body under the LinkedIn app's client \
                secret (`Settings.linkedin`)."
        }
    })
}

fn content(generator: &mut SchemaGenerator, content: &Content) -> Option<Value> {
    match content {
        Content::Json(schema) => Some(json!({"application/json": {"schema": schema(generator)}})),
        Content::Other(media, schema) => Some(json!({ *media: {"schema": schema} })),
        Content::Empty => None,
    }
}

fn request_body(generator: &mut SchemaGenerator, body: &Body) -> Value {
    match body {
        Body::Json(schema) => json!({
            "required": true,
            "content": {"application/json": {"schema": schema(generator)}}
        }),
        Body::MergePatch(schema) => {
            let schema = schema(generator);
            json!({
                "required": true,
                "description": "An RFC 7396 merge patch: a member sets a field, null clears it, \
                    lists are replaced whole.",
                "content": {
                    "application/merge-patch+json": {"schema": schema},
                    "application/json": {"schema": schema}
                }
            })
        }
        Body::Foreign(description) => json!({
            "required": true,
            "description": description,
            "content": {"application/json": {"schema": {"type": "object"}}}
        }),
        Body::Form(description) => json!({
            "required": true,
            "description": description,
            "content": {"application/x-www-form-urlencoded": {
                "schema": {"type": "object", "additionalProperties": {"type": "string"}}
            }}
        }),
    }
}

/// The schema generators: answers are described as the DTOs serialize, requests as the types
/// deserialize (an `Option` field may be left out of a request, but is `null` in an answer).
struct Generators {
    answers: SchemaGenerator,
    requests: SchemaGenerator,
}

fn operation(generators: &mut Generators, route: &Route) -> Value {
    let generator = &mut generators.answers;
    let mut parameters = path_params(route.path);
    for q in &route.query {
        parameters.extend(query_params(&q()));
    }
    for p in &route.params {
        parameters.push(json!({
            "name": p.name,
            "in": p.location,
            "required": p.required,
            "description": p.description,
            "schema": {"type": "string"},
        }));
    }
    let mut responses = Map::new();
    for answer in &route.answers {
        let mut value = json!({"description": answer.description});
        if let Some(c) = content(generator, &answer.content) {
            value["content"] = c;
        }
        if !answer.headers.is_empty() {
            value["headers"] = answer
                .headers
                .iter()
                .map(|(name, description)| {
                    (
                        (*name).to_owned(),
                        json!({"description": description, "schema": {"type": "string"}}),
                    )
                })
                .collect::<Map<_, _>>()
                .into();
        }
        responses.insert(answer.status.to_string(), value);
    }
    let mut errors: Vec<u16> = route.errors.to_vec();
    if matches!(route.auth, Auth::Operator) {
        errors.push(401);
    }
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        let mut answer = error_answer(generator, error_description(status));
        if status == 401 {
            answer["headers"] = json!({"WWW-Authenticate": {
                "description": "`Bearer`.", "schema": {"type": "string"}
            }});
        }
        responses.insert(status.to_string(), answer);
    }
    responses.insert(
        "default".into(),
        error_answer(
            generator,
            "Any other error (405 for a method the path does not take, 500 for our own \
             failures): the same error shape.",
        ),
    );
    let mut op = json!({
        "operationId": route.id,
        "tags": [route.tag],
        "summary": route.summary,
        "responses": responses,
    });
    if !parameters.is_empty() {
        op["parameters"] = parameters.into();
    }
    if let Some(body) = &route.body {
        op["requestBody"] = request_body(&mut generators.requests, body);
    }
    if !matches!(route.auth, Auth::Operator) {
        op["security"] = security(route.auth);
    }
    op
}

/// Examples of a few requests and answers, by operation id.
fn add_examples(paths: &mut Map<String, Value>) {
    let error = json!({"error": {"code": "not-found", "message": "no contact 42"}});
    let mut set = |path: &str, method: &str, pointer: &str, example: Value| {
        if let Some(target) = paths
            .get_mut(path)
            .and_then(|p| p.get_mut(method))
            .and_then(|o| o.pointer_mut(pointer))
        {
            target["example"] = example;
        }
    };
    set(
        "/api/v1/contacts",
        "post",
        "/requestBody/content/application~1json",
        json!({"name": "Ada Lovelace", "emails": ["ada@example.com"], "account": {"name": "Analytical Engines"}}),
    );
    set(
        "/api/v1/contacts/{id}",
        "get",
        "/responses/404/content/application~1json",
        error,
    );
    set(
        "/api/v1/contacts/{id}",
        "patch",
        "/requestBody/content/application~1merge-patch+json",
        json!({"jobTitle": "Analyst", "phones": null}),
    );
    set(
        "/api/v1/chats/{id}/messages",
        "post",
        "/requestBody/content/application~1json",
        json!({"text": "Hello! How can I help?"}),
    );
    set(
        "/api/v1/operators/me/status",
        "put",
        "/requestBody/content/application~1json",
        json!({"status": "active"}),
    );
    set(
        "/webhooks/api/{channel}",
        "post",
        "/requestBody/content/application~1json",
        json!({"messageId": "m-1", "from": {"id": "visitor-1", "name": "Visitor"}, "text": "My order is late"}),
    );
    set(
        "/api/v1/contacts",
        "get",
        "/responses/200/content/application~1json",
        json!({"items": [{
            "id": "1", "name": "Ada Lovelace", "emails": ["ada@example.com"], "phones": [],
            "jobTitle": null, "account": null, "tags": [], "identities": [],
            "createdAt": "2026-01-01T09:00:00.000Z", "updatedAt": "2026-01-01T09:00:00.000Z"
        }], "total": 3, "nextCursor": "1"}),
    );
}

/// The whole document.
pub fn document() -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
    });
    let mut generators = Generators {
        answers: SchemaGenerator::new(settings.clone().for_serialize()),
        requests: SchemaGenerator::new(settings.for_deserialize()),
    };
    let mut paths = Map::new();
    for route in routes() {
        let op = operation(&mut generators, &route);
        let item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| json!({}));
        item[route.method] = op;
    }
    add_examples(&mut paths);
    let mut schemas = generators.answers.definitions().clone();
    for schema in generators.requests.definitions_mut().values_mut() {
        without_null_defaults(schema);
    }
    for (name, schema) in generators.requests.definitions() {
        let previous = schemas.insert(name.clone(), schema.clone());
        assert!(
            previous.is_none_or(|p| p == *schema),
            "{name} is both a request and an answer type with different schemas"
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard operator API",
            "version": "v1",
            "description": "The operator API (`/api/v1`) and the webhooks (`/webhooks`) of a \
                Switchboard daemon. Every error answers `{\"error\": {\"code\", \"message\"}}` \
                (`code` is stable). Lists answer `{\"items\", \"total\", \"nextCursor\"}`: pass \
                `nextCursor` back as `cursor` for the next page (`limit` 1 to 1000, 100 when \
                absent). This document is served at `GET /api/v1/openapi.json` without a token."
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "servers": [{"url": "/"}],
        "security": security(Auth::Operator),
        "tags": [
            {"name": "objects", "description": "The running configuration's objects."},
            {"name": "mail", "description": "Stored and sent e-mail."},
            {"name": "chat", "description": "The chat operator API."},
            {"name": "records", "description": "Contacts, accounts, activities, leads."},
            {"name": "webhooks", "description": "Providers' calls, each checked with the provider's token or signature."},
            {"name": "meta", "description": "This document."}
        ],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": security_schemes(),
        }
    })
}

/// `value` without `"default": null`: a request field that may be left out but is never null
/// (`#[serde(default)]` on an `Option` read as a plain value) has no default to show.
fn without_null_defaults(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if map.get("default") == Some(&Value::Null) {
                map.remove("default");
            }
            map.values_mut().for_each(without_null_defaults);
        }
        Value::Array(items) => items.iter_mut().for_each(without_null_defaults),
        _ => {}
    }
}

/// The committed text: pretty JSON with a final newline.
pub fn text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).expect("the document serializes");
    text.push('\n');
    text
}

/// `GET /api/v1/openapi.json` (no token needed).
pub async fn serve() -> Response {
    static DOCUMENT: std::sync::LazyLock<Value> = std::sync::LazyLock::new(document);
    Json(DOCUMENT.clone()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_has_a_unique_id_and_its_path_parameters() {
        let doc = document();
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("item") {
                let id = op["operationId"].as_str().expect("operationId");
                assert!(ids.insert(id.to_owned()), "{id} twice");
                let named: Vec<&str> = op["parameters"]
                    .as_array()
                    .map(|ps| {
                        ps.iter()
                            .filter(|p| p["in"] == "path")
                            .filter_map(|p| p["name"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(named.len(), path.matches('{').count(), "{method} {path}");
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let text = serde_json::to_string(&doc).expect("text");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = part.split('"').next().expect("name");
            assert!(schemas.contains_key(name), "no schema {name}");
        }
        for name in schemas.keys() {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)),
                "{name} is not a valid component name"
            );
        }
    }
}
