//! The sales-team demo, `examples/sales-team/run.sh`, runs its whole story in a test, so it
//! cannot rot: against this build of `switchboard` and of the `provider-fakes` example, on a
//! free port, the lead integration must subscribe its webhook at the fake LinkedIn, and each
//! lead form a member submits must arrive through LinkedIn's signed notification and show as
//! one lead, mapped, with its contact, through the operator API. Then Jonas's Google account
//! syncs against the fake Google on "sync now": the contacts of his Google group come in with
//! his tag, his events as activities, and a contact made here with his tag goes out; and Ava's
//! Microsoft 365 mailbox against the fake Graph: her Outlook contacts and meeting come in, the
//! customers here go out to her Outlook.

#[path = "support/demo.rs"]
mod demo;
mod support;

use std::time::Duration;

#[test]
fn the_sales_team_demo_captures_linkedin_leads_and_syncs_google_and_microsoft_365() {
    // REQ: LI-01, LI-02, LI-03, LI-05, LI-08
    let run = demo::run(
        "examples/sales-team/run.sh",
        support::free_port(),
        Duration::from_secs(180),
    );
    let (stdout, told) = (&run.stdout, &run.told);
    assert!(
        run.status.is_some_and(|s| s.success()),
        "the demo failed ({:?}):\n{told}",
        run.status
    );
    // The reconciler subscribed the webhook for the ad account.
    assert!(
        stdout.contains("lead notifications of ad account 508912345 go to http://127.0.0.1:"),
        "{told}"
    );
    // Each submitted form came as a signed notification and became a lead, mapped by its
    // form's mapping, with its person in the record store.
    assert_eq!(
        stdout
            .matches("Switchboard answered 200 {\"outcome\":\"accepted\"}")
            .count(),
        2,
        "{told}"
    );
    for shown in [
        // The default mapping, a constant and the not-mapped values in Notes.
        "\"GivenName\":\"Maya\"",
        "\"LeadSource\":\"LinkedIn\"",
        "\"Notes\":\"marketing_consent: true\\nutm_campaign: spring\"",
        "GET  /api/v1/contacts/1 → Maya Okafor <maya.okafor@northwind.example>",
        // The form's own mapping: a custom question, a checkbox, a hidden field, constants.
        "\"UsrProductInterest\":\"Embedded dashboards\"",
        "\"UsrMarketingConsent\":true",
        "\"UsrUtmCampaign\":\"spring\"",
        "\"Event\":\"Low-Code Days 2025\"",
        "\"UsrBudgetConfirmed\":false",
        "→ Tomás Herrera <tomas.herrera@contoso.example>",
    ] {
        assert!(stdout.contains(shown), "missing {shown:?}:\n{told}");
    }
    // The same notification twice: one lead.
    assert!(
        stdout.contains("Switchboard answered 200 {\"outcome\":\"duplicate\"}")
            && stdout.contains("still 1 lead"),
        "{told}"
    );
    // Jonas (the notify role) got both events, and the log lists what happened.
    assert_eq!(
        stdout.matches("events       lead.created").count(),
        2,
        "{told}"
    );
    assert!(
        stdout.contains("log → lead-created lead-created subscribed"),
        "{told}"
    );
    assert!(stdout.contains("The story is complete: 2 leads"), "{told}");
    // REQ: CS-03, AS-03
    // Google: "sync now" imported the group's contacts with Jonas's tag (not the one outside
    // the group), the calendar's events as activities, and exported the contact made here.
    for shown in [
        "GET  /api/v1/contacts?q=lena.fischer → Lena Fischer, tags [\"Jonas - event contacts\"]",
        "GET  /api/v1/contacts?q=omar.haddad → Omar Haddad, tags [\"Jonas - event contacts\"]",
        "GET  /api/v1/contacts?q=oma.weber → none: not in Jonas's Google group",
        "GET  /api/v1/activities → \"Low-Code Days booth briefing\" \"Webinar dry run\"",
        "contacts: group \"Bluefin\": Lena Fischer <lena.fischer@fabrikam.example>, \
         Omar Haddad <omar.haddad@litware.example>, Sofia Rossi <sofia.rossi@adatum.example>",
    ] {
        assert!(stdout.contains(shown), "missing {shown:?}:\n{told}");
    }
    // REQ: CS-01, AS-01
    // Microsoft 365: the Outlook contacts and the meeting came in; the customers here (the
    // leads' contacts, the Google ones and the one made here) went out to Outlook.
    for shown in [
        "GET  /api/v1/contacts?q=henrik.dahl → Henrik Dahl",
        "GET  /api/v1/contacts?q=ingrid.berg → Ingrid Berg",
        "GET  /api/v1/activities → \"Low-Code Days booth briefing\" \
         \"Renewal call with Fjord Analytics\" \"Webinar dry run\"",
        "contacts: Outlook: Henrik Dahl <henrik.dahl@fjord.example>, \
         Ingrid Berg <ingrid.berg@nordlys.example>, Lena Fischer <lena.fischer@fabrikam.example>, \
         Maya Okafor <maya.okafor@northwind.example>, Omar Haddad <omar.haddad@litware.example>, \
         Sofia Rossi <sofia.rossi@adatum.example>, Tomás Herrera <tomas.herrera@contoso.example>",
        "Jonas's Google and Ava's Microsoft 365 contacts synced both ways, their calendars' events imported",
    ] {
        assert!(stdout.contains(shown), "missing {shown:?}:\n{told}");
    }
    // Secrets travel as credentials, never in what the demo prints.
    for secret in [
        "demo-linkedin-client-secret",
        "AQdemo-linkedin-refresh-token",
        "demo-google-client-secret",
        "demo-google-refresh-token",
        "demo-microsoft-client-secret",
        "demo-m365-refresh-token",
    ] {
        assert!(!told.contains(secret), "{secret} was printed:\n{told}");
    }
}
