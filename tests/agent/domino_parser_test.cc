#include "agent/domino/domino_parser.h"

#include <string>
#include <vector>

#include "agent/domino/pair_deduplicator.h"
#include "agent/parse_command.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rampart::agent {
namespace {

// One table row: a line, the options, and the expected JSON (as printed by
// `rampart-agent parse` for line 1, without dedup context), or "" if the line
// must not be recognised.
struct Case {
  std::string name;
  std::string line;
  std::string want;
  DominoParserOptions options = {};
};

std::string ParseToJson(const std::string& line,
                        const DominoParserOptions& options) {
  DominoParser parser(options);
  ParsedLine parsed;
  if (!parser.Parse(line, &parsed)) {
    return "";
  }
  std::string out;
  AppendParsedLineJson(&out, 1, parsed, /*dedup=*/false, "");
  return out;
}

std::string Json(const std::string& kind, const std::string& protocol,
                 const std::string& ip, const std::string& user,
                 const std::string& time) {
  return "{\"line\":1,\"kind\":\"" + kind + "\",\"protocol\":\"" + protocol +
         "\",\"ip\":\"" + ip + "\",\"user\":\"" + user + "\",\"time\":\"" +
         time + "\",\"dedup\":false}";
}

// `json` with the address dropped as suspect (Suspicion name `why`).
std::string Suspect(std::string json, const std::string& why) {
  json.insert(json.size() - 1, ",\"suspect\":\"" + why + "\"");
  return json;
}

constexpr DominoParserOptions kDmy{.date_order = DateOrder::kDmy};
constexpr DominoParserOptions kMdy{.date_order = DateOrder::kMdy};
constexpr DominoParserOptions kSuccess{.successes = true};

class DominoParserTableTest : public ::testing::TestWithParam<Case> {};

TEST_P(DominoParserTableTest, ParsesAsExpected) {
  const Case& c = GetParam();
  EXPECT_EQ(ParseToJson(c.line, c.options), c.want) << c.line;
}

// Every example of docs/domino-log-format.md (../shared), then variants.
const Case kCases[] = {
    // --- Family A, verbatim examples.
    {"doc_a_smtp",
     "06.03.2024 10:15:32   smtp: jdoe [198.51.100.7] authentication failure "
     "using internet password",
     Json("auth_failure", "smtp", "198.51.100.7", "jdoe",
          "2024-03-06T10:15:32")},
    {"doc_a_http_prefix_ampm",
     "[1234:00012-7F01] 03/06/2024 10:15:33 AM  http: anna.berg@example.com "
     "[203.0.113.9] authentication failure using internet password",
     Json("auth_failure", "http", "203.0.113.9", "anna.berg@example.com",
          "2024-03-06T10:15:33")},
    // --- A-lock.
    {"doc_a_lock_ip_address",
     "06.03.2024 10:16:02   http: IP Address [203.0.113.9] authentication "
     "failure using internet password: User is locked out",
     Json("lockout", "http", "203.0.113.9", "", "2024-03-06T10:16:02")},
    {"a_lock_named_user",
     "06.03.2024 10:16:02   smtp: jdoe [203.0.113.9] authentication "
     "failure using internet password: User is locked out",
     Json("lockout", "smtp", "203.0.113.9", "jdoe", "2024-03-06T10:16:02")},
    {"a_ip_address_user_without_lockout_is_a_user",
     "06.03.2024 10:16:02   http: IP Address [203.0.113.9] authentication "
     "failure using internet password",
     Json("auth_failure", "http", "203.0.113.9", "IP Address",
          "2024-03-06T10:16:02")},
    {"a_imap",
     "06.03.2024 10:15:32   imap: x [198.51.100.7] authentication "
     "failure using internet password",
     Json("auth_failure", "imap", "198.51.100.7", "x", "2024-03-06T10:15:32")},
    {"a_pop3",
     "06.03.2024 10:15:32   pop3: x [198.51.100.7] authentication "
     "failure using internet password",
     Json("auth_failure", "pop3", "198.51.100.7", "x", "2024-03-06T10:15:32")},
    {"a_ldap",
     "06.03.2024 10:15:32   ldap: cn=x,o=acme [198.51.100.7] authentication "
     "failure using internet password",
     Json("auth_failure", "ldap", "198.51.100.7", "cn=x,o=acme",
          "2024-03-06T10:15:32")},
    // --- Family B, verbatim examples and variants.
    {"doc_b_plain",
     "2024-03-06 10:15:32   SMTP Server: Authentication failed for user jdoe "
     "; connecting host 198.51.100.7",
     Json("auth_failure", "smtp", "198.51.100.7", "jdoe",
          "2024-03-06T10:15:32")},
    {"doc_b_id_bracket",
     "2024-03-06 10:15:34   SMTP Server [0D14:0027-1334] Authentication "
     "failed for user Bad Guy ; connecting host [198.51.100.8]",
     Json("auth_failure", "smtp", "198.51.100.8", "Bad Guy",
          "2024-03-06T10:15:34")},
    {"b_hostname_ip",
     "2024-03-06 10:15:34   SMTP Server: Authentication failed for user x ; "
     "connecting host mail.example.net (198.51.100.9)",
     Json("auth_failure", "smtp", "198.51.100.9", "x", "2024-03-06T10:15:34")},
    {"b_imap_task",
     "2024-03-06 10:15:34   IMAP Server: Authentication failed for user x ; "
     "connecting host 198.51.100.9",
     Json("auth_failure", "imap", "198.51.100.9", "x", "2024-03-06T10:15:34")},
    {"b_ldap_task",
     "2024-03-06 10:15:34   LDAP Server: Authentication failed for user x ; "
     "connecting host 198.51.100.9",
     Json("auth_failure", "ldap", "198.51.100.9", "x", "2024-03-06T10:15:34")},
    {"b_empty_user",
     "2024-03-06 10:15:34   SMTP Server: Authentication failed for user  ; "
     "connecting host 198.51.100.9",
     Json("auth_failure", "smtp", "198.51.100.9", "", "2024-03-06T10:15:34")},
    {"b_empty_user_single_space",
     "2024-03-06 10:15:34   SMTP Server: Authentication failed for user ; "
     "connecting host 198.51.100.9",
     Json("auth_failure", "smtp", "198.51.100.9", "", "2024-03-06T10:15:34")},
    // --- Family C.
    {"doc_c",
     "2024-03-06 10:15:40   SMTP Server [000527:000013-0000001227564800] "
     "Connection from [198.51.100.20] rejected for policy reasons. IP "
     "address of connecting host not found in reverse DNS lookup.",
     Json("policy_reject", "smtp", "198.51.100.20", "", "2024-03-06T10:15:40")},
    // --- Family D.
    {"doc_d_connect",
     "06-03-2024 10:15:41   SMTP Server: 198.51.100.7 connected",
     Json("connect", "smtp", "198.51.100.7", "", "2024-03-06T10:15:41"), kDmy},
    {"doc_d_connect_hostname",
     "06-03-2024 10:15:42   SMTP Server: mail.example.net (198.51.100.30) "
     "connected",
     Json("connect", "smtp", "198.51.100.30", "", "2024-03-06T10:15:42"), kDmy},
    {"doc_d_disconnect",
     "06-03-2024 10:15:43   SMTP Server: 198.51.100.7 disconnected. 0 "
     "message[s] received",
     Json("disconnect", "smtp", "198.51.100.7", "", "2024-03-06T10:15:43"),
     kDmy},
    {"d_imap_disconnect",
     "06-03-2024 10:15:43   IMAP Server: 198.51.100.7 disconnected",
     Json("disconnect", "imap", "198.51.100.7", "", "2024-03-06T10:15:43"),
     kDmy},
    {"d_off", "06-03-2024 10:15:41   SMTP Server: 198.51.100.7 connected", "",
     DominoParserOptions{.sessions = false}},
    // --- Family E.
    {"doc_e",
     "28.05.2022 00:47:20   TLS/SSL connection 198.51.100.40(57820) -> "
     "192.0.2.1(443) failed with no supported ciphers",
     Json("tls_failure", "http", "198.51.100.40", "", "2022-05-28T00:47:20")},
    {"e_smtps",
     "28.05.2022 00:47:20   TLS/SSL connection 198.51.100.40(57820) -> "
     "192.0.2.1(465) failed with rejected SSLv3 connection",
     Json("tls_failure", "smtp", "198.51.100.40", "", "2022-05-28T00:47:20")},
    {"e_off",
     "28.05.2022 00:47:20   TLS/SSL connection 198.51.100.40(57820) -> "
     "192.0.2.1(443) failed with no supported ciphers",
     "", DominoParserOptions{.tls_failures = false}},
    // --- Family F (behind the switch).
    {"f_smtp",
     "2024-03-06 10:15:34   SMTP Server: Authentication succeeded for user "
     "jdoe ; connecting host 198.51.100.9",
     Json("auth_success", "smtp", "198.51.100.9", "jdoe",
          "2024-03-06T10:15:34"),
     kSuccess},
    {"f_imap",
     "2024-03-06 10:15:34   IMAP Server: Jane Doe logged in from 198.51.100.9",
     Json("auth_success", "imap", "198.51.100.9", "Jane Doe",
          "2024-03-06T10:15:34"),
     kSuccess},
    {"f_pop3",
     "2024-03-06 10:15:34   POP3 Server: jdoe logged in; connecting host "
     "198.51.100.9",
     Json("auth_success", "pop3", "198.51.100.9", "jdoe",
          "2024-03-06T10:15:34"),
     kSuccess},
    {"f_off_by_default",
     "2024-03-06 10:15:34   IMAP Server: Jane Doe logged in from 198.51.100.9",
     ""},
    {"f_smtp_off_by_default",
     "2024-03-06 10:15:34   SMTP Server: Authentication succeeded for user "
     "jdoe ; connecting host 198.51.100.9",
     ""},
    // --- Prefix variants.
    {"prefix_linux",
     "[28325:00010-3735542592] 22-06-2014 09:56:12   smtp: postmaster "
     "[192.0.2.4] authentication failure using internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "postmaster",
          "2014-06-22T09:56:12")},
    {"prefix_padded_hex",
     "[007577:000017-00007F621246D700] 2016-11-07 22:21:20   smtp: a "
     "[192.0.2.4] authentication failure using internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "a", "2016-11-07T22:21:20")},
    {"prefix_windows",
     "[4674:000E-30C8] 01/23/2009 19:54:51   SMTP Server: Authentication "
     "failed for user postmaster ; connecting host 192.0.2.4",
     Json("auth_failure", "smtp", "192.0.2.4", "postmaster",
          "2009-01-23T19:54:51")},
    // --- Date and time variants.
    {"date_mdy_dash",
     "01-23-2009 19:54:51   SMTP Server: Authentication failed "
     "for user p ; connecting host 192.0.2.4",
     Json("auth_failure", "smtp", "192.0.2.4", "p", "2009-01-23T19:54:51")},
    {"date_dmy_dash_configured",
     "03-06-2024 10:15:32   smtp: a [192.0.2.4] authentication failure "
     "using internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "a", "2024-06-03T10:15:32"),
     kDmy},
    {"date_mdy_dash_configured",
     "03-06-2024 10:15:32   smtp: a [192.0.2.4] authentication failure "
     "using internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "a", "2024-03-06T10:15:32"),
     kMdy},
    {"date_configured_order_rejects_impossible_date",
     "01-23-2009 19:54:51   smtp: a [192.0.2.4] authentication failure "
     "using internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "a", ""), kDmy},
    {"time_hundredths",
     "22.06.2014 09:49:47.90   smtp: a [192.0.2.4] authentication failure "
     "using internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "a", "2014-06-22T09:49:47")},
    {"time_12_am_is_midnight",
     "12/31/2019 12:16:40 AM  smtp: a [192.0.2.4] authentication failure "
     "using internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "a", "2019-12-31T00:16:40")},
    {"time_12_pm_is_noon",
     "12/31/2019 12:16:40 PM  smtp: a [192.0.2.4] authentication failure "
     "using internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "a", "2019-12-31T12:16:40")},
    {"time_pm",
     "12/31/2019 05:16:40 PM  smtp: a [192.0.2.4] authentication failure "
     "using internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "a", "2019-12-31T17:16:40")},
    {"one_space_before_message",
     "2024-03-06 10:15:32 smtp: a [192.0.2.4] authentication failure using "
     "internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "a", "2024-03-06T10:15:32")},
    {"two_digit_year",
     "06.03.24 10:15:32   smtp: a [192.0.2.4] authentication failure using "
     "internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "a", "2024-03-06T10:15:32")},
    {"leap_day",
     "29.02.2024 10:15:32   smtp: a [192.0.2.4] authentication "
     "failure using internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "a", "2024-02-29T10:15:32")},
    {"not_a_leap_day",
     "29.02.2023 10:15:32   smtp: a [192.0.2.4] authentication failure using "
     "internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "a", "")},
    {"crlf_and_trailing_space",
     "06.03.2024 10:15:32   smtp: a [192.0.2.4] authentication failure "
     "using internet password  \r",
     Json("auth_failure", "smtp", "192.0.2.4", "a", "2024-03-06T10:15:32")},
    {"no_timestamp",
     "smtp: a [192.0.2.4] authentication failure using internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "a", "")},
    // --- Hostile user names: the address is read from the right.
    {"user_with_brackets",
     "06.03.2024 10:15:32   smtp: x [203.0.113.66] y [198.51.100.7] "
     "authentication failure using internet password",
     Json("auth_failure", "smtp", "198.51.100.7", "x [203.0.113.66] y",
          "2024-03-06T10:15:32")},
    {"user_with_fake_trailer",
     "06.03.2024 10:15:32   smtp: a [203.0.113.66] authentication failure "
     "using internet password [198.51.100.7] authentication failure using "
     "internet password",
     Suspect(Json("auth_failure", "smtp", "",
                  "a [203.0.113.66] authentication failure using internet "
                  "password",
                  "2024-03-06T10:15:32"),
             "marker_in_user")},
    {"b_user_with_fake_host",
     "2024-03-06 10:15:32   SMTP Server: Authentication failed for user a ; "
     "connecting host 203.0.113.99 ; connecting host 198.51.100.7",
     Suspect(Json("auth_failure", "smtp", "",
                  "a ; connecting host 203.0.113.99", "2024-03-06T10:15:32"),
             "marker_in_user")},
    {"b_empty_host_does_not_expose_marker_in_user",
     "2024-03-06 10:15:32   SMTP Server: Authentication failed for user "
     "admin ; connecting host 203.0.113.99 ; connecting host ",
     Suspect(
         Json("auth_failure", "smtp", "",
              "admin ; connecting host 203.0.113.99", "2024-03-06T10:15:32"),
         "marker_in_user")},
    {"f_imap_empty_ip_does_not_expose_marker_in_user",
     "2024-03-06 10:15:34   IMAP Server: x logged in from 203.0.113.99 "
     "logged in from ",
     Suspect(Json("auth_success", "imap", "", "x logged in from 203.0.113.99",
                  "2024-03-06T10:15:34"),
             "marker_in_user"),
     kSuccess},
    {"b_user_contains_f_phrase_is_still_b",
     "2024-03-06 10:15:32   IMAP Server: Authentication failed for user x "
     "logged in from 203.0.113.99 ; connecting host 198.51.100.7",
     Suspect(Json("auth_failure", "imap", "", "x logged in from 203.0.113.99",
                  "2024-03-06T10:15:32"),
             "marker_in_user"),
     kSuccess},
    {"user_quotes_backslash_control",
     std::string("06.03.2024 10:15:32   smtp: a\"b\\c\x01 [192.0.2.4] "
                 "authentication failure using internet password"),
     Suspect(Json("auth_failure", "smtp", "", "a\\\"b\\\\c\\u0001",
                  "2024-03-06T10:15:32"),
             "control_in_user")},
    // --- Issue 16 item 2: shapes only a forged address needs. The address
    // is dropped (the agent counts the line instead of reporting it); the
    // victim 203.0.113.99 is never the result.
    {"padded_forged_tail",
     "2024-03-06 10:15:32   SMTP Server: Authentication failed for user ; "
     "connecting host 203.0.113.99" +
         std::string(64, ' '),
     Suspect(Json("auth_failure", "smtp", "", "", "2024-03-06T10:15:32"),
             "padded")},
    {"padded_with_vertical_tabs",
     "06.03.2024 10:15:32   smtp: a [203.0.113.99] authentication failure "
     "using internet password" +
         std::string(8, '\v'),
     Suspect(Json("auth_failure", "smtp", "", "a", "2024-03-06T10:15:32"),
             "padded")},
    {"user_of_256_bytes_is_trusted",
     "06.03.2024 10:15:32   smtp: " + std::string(256, 'u') +
         " [198.51.100.7] authentication failure using internet password",
     Json("auth_failure", "smtp", "198.51.100.7", std::string(256, 'u'),
          "2024-03-06T10:15:32")},
    {"user_of_257_bytes_is_suspect",
     "2024-03-06 10:15:32   SMTP Server: Authentication failed for user " +
         std::string(257, 'u') + " ; connecting host 203.0.113.99",
     Suspect(Json("auth_failure", "smtp", "", std::string(257, 'u'),
                  "2024-03-06T10:15:32"),
             "long_user")},
    {"nul_in_user",
     std::string("06.03.2024 10:15:32   smtp: a\0b [203.0.113.99] "
                 "authentication failure using internet password",
                 93),
     Suspect(
         Json("auth_failure", "smtp", "", "a\\u0000b", "2024-03-06T10:15:32"),
         "control_in_user")},
    {"esc_in_user",
     "06.03.2024 10:15:32   smtp: a\x1b[2K [203.0.113.99] authentication "
     "failure using internet password",
     Suspect(
         Json("auth_failure", "smtp", "", "a\\u001b[2K", "2024-03-06T10:15:32"),
         "control_in_user")},
    // A bare CR does not end a line (only '\n' does), and a user field
    // holding one cannot pass a copy of Domino's own line.
    {"bare_cr_before_a_forged_b_line",
     "2024-03-06 10:15:32   SMTP Server: Authentication failed for user x\r"
     "2024-03-06 10:15:32   SMTP Server: Authentication failed for user y ; "
     "connecting host 203.0.113.99 ; connecting host 198.51.100.7",
     Suspect(Json("auth_failure", "smtp", "",
                  "x\\r2024-03-06 10:15:32   SMTP Server: Authentication "
                  "failed for user y ; connecting host 203.0.113.99",
                  "2024-03-06T10:15:32"),
             "control_in_user")},
    {"user_forging_an_ip_lockout",
     "06.03.2024 10:16:02   http: IP Address [203.0.113.99] authentication "
     "failure using internet password: User is locked out [198.51.100.7] "
     "authentication failure using internet password",
     Suspect(Json("auth_failure", "http", "",
                  "IP Address [203.0.113.99] authentication failure using "
                  "internet password: User is locked out",
                  "2024-03-06T10:16:02"),
             "marker_in_user")},
    // A second address in the user field is harmless: the address is read
    // from the right, and the attacker's own one is taken.
    {"a_second_address_in_user",
     "06.03.2024 10:15:32   smtp: 203.0.113.99 [203.0.113.99] [198.51.100.7] "
     "authentication failure using internet password",
     Json("auth_failure", "smtp", "198.51.100.7", "203.0.113.99 [203.0.113.99]",
          "2024-03-06T10:15:32")},
    {"b_second_address_in_user",
     "2024-03-06 10:15:32   SMTP Server: Authentication failed for user "
     "[203.0.113.99] 203.0.113.99 ; connecting host [198.51.100.7]",
     Json("auth_failure", "smtp", "198.51.100.7", "[203.0.113.99] 203.0.113.99",
          "2024-03-06T10:15:32")},
    {"user_utf8",
     "06.03.2024 10:15:32   smtp: J\xC3\xBCrgen M\xC3\xBCller [192.0.2.4] "
     "authentication failure using internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "J\xC3\xBCrgen M\xC3\xBCller",
          "2024-03-06T10:15:32")},
    {"user_latin1_bytes_become_code_points",
     "06.03.2024 10:15:32   smtp: J\xFCrgen [192.0.2.4] "
     "authentication failure using internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "J\xC3\xBCrgen",
          "2024-03-06T10:15:32")},
    {"empty_user_a",
     "06.03.2024 10:15:32   smtp:  [192.0.2.4] authentication failure using "
     "internet password",
     Json("auth_failure", "smtp", "192.0.2.4", "", "2024-03-06T10:15:32")},
    // --- Invalid, masked and special addresses.
    {"masked_ip",
     "06.03.2024 10:15:32   smtp: a [xxx.xxx.xxx.xxx] authentication "
     "failure using internet password",
     Json("auth_failure", "smtp", "", "a", "2024-03-06T10:15:32")},
    {"out_of_range_ip",
     "06.03.2024 10:15:32   smtp: a [111.222.333.444] authentication "
     "failure using internet password",
     Json("auth_failure", "smtp", "", "a", "2024-03-06T10:15:32")},
    {"empty_brackets",
     "06.03.2024 10:15:32   smtp: a [] authentication failure using "
     "internet password",
     Json("auth_failure", "smtp", "", "a", "2024-03-06T10:15:32")},
    {"b_masked_host",
     "2024-03-06 10:15:32   SMTP Server: Authentication failed for user a ; "
     "connecting host xxx.xxx.xxx.xxx",
     Json("auth_failure", "smtp", "", "a", "2024-03-06T10:15:32")},
    {"b_no_host_marker",
     "2024-03-06 10:15:32   SMTP Server: Authentication failed for user a",
     Json("auth_failure", "smtp", "", "a", "2024-03-06T10:15:32")},
    {"ipv4_mapped_is_ipv4",
     "06.03.2024 10:15:32   smtp: a [::ffff:198.51.100.7] authentication "
     "failure using internet password",
     Json("auth_failure", "smtp", "198.51.100.7", "a", "2024-03-06T10:15:32")},
    {"ipv6_canonical",
     "06.03.2024 10:15:32   imap: a [2001:DB8:0:0:0:0:0:1] authentication "
     "failure using internet password",
     Json("auth_failure", "imap", "2001:db8::1", "a", "2024-03-06T10:15:32")},
    {"ipv6_zone_stripped",
     "2024-03-06 10:15:32   SMTP Server: Authentication failed for user a ; "
     "connecting host 2001:db8::7%eth0",
     Json("auth_failure", "smtp", "2001:db8::7", "a", "2024-03-06T10:15:32")},
    {"leading_zero_octet_rejected",
     "06.03.2024 10:15:32   smtp: a [198.051.100.7] authentication failure "
     "using internet password",
     Json("auth_failure", "smtp", "", "a", "2024-03-06T10:15:32")},
    // --- Lines that must not be recognised.
    {"hex_code_line", "12.03.2010 13:59:31 07:92: 0A:0A", ""},
    {"router_noise",
     "06.03.2024 10:15:32   Router: Message 0A1B delivered to jdoe/Acme", ""},
    {"smtp_message_received",
     "06.03.2024 10:15:32   SMTP Server: Message 0A1B (MessageID: <a@b>) "
     "received from mx.example.net size 1234 bytes",
     ""},
    {"imap_logged_out", "06.03.2024 10:15:32   IMAP Server: jdoe logged out",
     ""},
    {"http_web_server",
     "06.03.2024 10:15:32   HTTP Web Server: Lotus Notes Exception - File "
     "does not exist [/favicon.ico]",
     ""},
    {"banner", "Lotus Domino (r) Server started, running Release 12.0.2", ""},
    {"empty", "", ""},
    {"trailer_only", "authentication failure using internet password", ""},
    {"upper_case_proto_a",
     "06.03.2024 10:15:32   SMTP: a [192.0.2.4] authentication failure using "
     "internet password",
     ""},
    {"unknown_proto",
     "06.03.2024 10:15:32   nntp: a [192.0.2.4] authentication failure "
     "using internet password",
     ""},
    {"truncated_trailer",
     "06.03.2024 10:15:32   smtp: a [192.0.2.4] authentication failure using "
     "internet passw",
     ""},
    {"policy_without_reason",
     "2024-03-06 10:15:40   SMTP Server: Connection from [198.51.100.20] "
     "accepted",
     ""},
};

INSTANTIATE_TEST_SUITE_P(Lines, DominoParserTableTest,
                         ::testing::ValuesIn(kCases),
                         [](const ::testing::TestParamInfo<Case>& param_info) {
                           return param_info.param.name;
                         });

TEST(DominoParserTest, AutoDateOrderLearnsFromADecidingLine) {
  DominoParser parser(DominoParserOptions{});
  ParsedLine p;
  // Ambiguous dash date before any evidence: DMY guess.
  ASSERT_TRUE(
      parser.Parse("03-06-2024 10:00:00   smtp: a [192.0.2.1] "
                   "authentication failure using internet password",
                   &p));
  EXPECT_EQ(p.time, absl::CivilSecond(2024, 6, 3, 10, 0, 0));
  EXPECT_EQ(parser.effective_date_order(), DateOrder::kAuto);
  // 23 > 12 in the second field: the server writes MDY.
  ASSERT_TRUE(
      parser.Parse("01-23-2024 10:00:00   smtp: a [192.0.2.1] "
                   "authentication failure using internet password",
                   &p));
  EXPECT_EQ(p.time, absl::CivilSecond(2024, 1, 23, 10, 0, 0));
  EXPECT_EQ(parser.effective_date_order(), DateOrder::kMdy);
  // Later ambiguous dates follow what was learned.
  ASSERT_TRUE(
      parser.Parse("03-06-2024 10:00:00   smtp: a [192.0.2.1] "
                   "authentication failure using internet password",
                   &p));
  EXPECT_EQ(p.time, absl::CivilSecond(2024, 3, 6, 10, 0, 0));
}

TEST(DominoParserTest, AutoDateOrderGuessesMdyForSlashes) {
  DominoParser parser(DominoParserOptions{});
  ParsedLine p;
  ASSERT_TRUE(
      parser.Parse("03/06/2024 10:00:00   smtp: a [192.0.2.1] "
                   "authentication failure using internet password",
                   &p));
  EXPECT_EQ(p.time, absl::CivilSecond(2024, 3, 6, 10, 0, 0));
}

TEST(DominoParserTest, ParseDateOrder) {
  EXPECT_EQ(*ParseDateOrder("MDY"), DateOrder::kMdy);
  EXPECT_EQ(*ParseDateOrder("dmy"), DateOrder::kDmy);
  EXPECT_EQ(*ParseDateOrder("ymd"), DateOrder::kYmd);
  EXPECT_EQ(*ParseDateOrder("auto"), DateOrder::kAuto);
  absl::StatusOr<DateOrder> bad = ParseDateOrder("ydm");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              ::testing::HasSubstr("auto, mdy, dmy, ymd"));
}

TEST(DominoParserTest, HugeHostileUserIsHandledWhole) {
  std::string user(300000, 'A');
  user += " ; connecting host 203.0.113.99 [";
  const std::string line = "06.03.2024 10:15:32   smtp: " + user +
                           " [198.51.100.7] authentication failure using "
                           "internet password";
  DominoParser parser(DominoParserOptions{});
  ParsedLine p;
  ASSERT_TRUE(parser.Parse(line, &p));
  // Recognised whole, but a user field that long is suspect: no address.
  EXPECT_FALSE(p.ip.has_value());
  EXPECT_EQ(p.suspicion, Suspicion::kLongUser);
  EXPECT_EQ(p.user, user);
}

TEST(DominoParserTest, PathologicalBracketsStayCheap) {
  // fail2ban's Domino filter backtracked catastrophically on lines like this.
  std::string line = "06.03.2024 10:15:32   smtp: ";
  for (int i = 0; i < 20000; ++i) {
    line += "[a] ";
  }
  line += "authentication failure using internet passwor";
  DominoParser parser(DominoParserOptions{});
  ParsedLine p;
  EXPECT_FALSE(parser.Parse(line, &p));
}

ParsedLine Failure(LineFamily family, const char* ip, std::string_view user,
                   int second, Protocol protocol = Protocol::kSmtp) {
  ParsedLine p;
  p.kind = EventKind::kAuthFailure;
  p.family = family;
  p.protocol = protocol;
  p.ip = IpAddress::Parse(ip);
  p.user = user;
  p.has_time = true;
  p.time = absl::CivilSecond(2024, 3, 6, 10, 0, second);
  return p;
}

constexpr LineFamily kA = LineFamily::kInternetPassword;
constexpr LineFamily kB = LineFamily::kServerTask;

TEST(PairDeduplicatorTest, CollapsesAThenB) {
  PairDeduplicator d;
  EXPECT_FALSE(d.Observe(Failure(kA, "192.0.2.1", "u", 1)));
  EXPECT_TRUE(d.Observe(Failure(kB, "192.0.2.1", "u", 1)));
}

TEST(PairDeduplicatorTest, CollapsesBThenA) {
  PairDeduplicator d;
  EXPECT_FALSE(d.Observe(Failure(kB, "192.0.2.1", "u", 1)));
  EXPECT_TRUE(d.Observe(Failure(kA, "192.0.2.1", "u", 1)));
}

TEST(PairDeduplicatorTest, TwoAttemptsInOneSecondCountTwice) {
  PairDeduplicator d;
  EXPECT_FALSE(d.Observe(Failure(kA, "192.0.2.1", "u", 1)));
  EXPECT_TRUE(d.Observe(Failure(kB, "192.0.2.1", "u", 1)));
  EXPECT_FALSE(d.Observe(Failure(kA, "192.0.2.1", "u", 1)));
  EXPECT_TRUE(d.Observe(Failure(kB, "192.0.2.1", "u", 1)));
  EXPECT_FALSE(d.Observe(Failure(kA, "192.0.2.1", "u", 1)));
  EXPECT_FALSE(d.Observe(Failure(kA, "192.0.2.1", "u", 1)));
}

TEST(PairDeduplicatorTest, DifferentKeysDoNotPair) {
  PairDeduplicator d;
  EXPECT_FALSE(d.Observe(Failure(kA, "192.0.2.1", "u", 1)));
  EXPECT_FALSE(d.Observe(Failure(kB, "192.0.2.2", "u", 1)));  // ip
  EXPECT_FALSE(d.Observe(Failure(kB, "192.0.2.1", "v", 1)));  // user
  EXPECT_FALSE(d.Observe(Failure(kB, "192.0.2.1", "u", 2)));  // second
  EXPECT_FALSE(
      d.Observe(Failure(kB, "192.0.2.1", "u", 1, Protocol::kImap)));  // proto
  EXPECT_FALSE(d.Observe(Failure(kA, "192.0.2.1", "u", 1)));  // same family
}

TEST(PairDeduplicatorTest, WindowIsBounded) {
  PairDeduplicator d;
  EXPECT_FALSE(d.Observe(Failure(kA, "192.0.2.1", "u", 1)));
  for (size_t i = 0; i < PairDeduplicator::kWindow; ++i) {
    EXPECT_FALSE(d.Observe(Failure(kA, "192.0.2.9", "other", 1)));
  }
  EXPECT_FALSE(d.Observe(Failure(kB, "192.0.2.1", "u", 1)));
}

TEST(PairDeduplicatorTest, InterleavedPairsWithinWindow) {
  PairDeduplicator d;
  EXPECT_FALSE(d.Observe(Failure(kA, "192.0.2.1", "u", 1)));
  EXPECT_FALSE(d.Observe(Failure(kA, "192.0.2.2", "u", 1)));
  EXPECT_TRUE(d.Observe(Failure(kB, "192.0.2.1", "u", 1)));
  EXPECT_TRUE(d.Observe(Failure(kB, "192.0.2.2", "u", 1)));
}

TEST(PairDeduplicatorTest, OtherFamiliesAreIgnored) {
  PairDeduplicator d;
  ParsedLine p = Failure(kA, "192.0.2.1", "", 1);
  p.family = LineFamily::kPolicyReject;
  p.kind = EventKind::kPolicyReject;
  EXPECT_FALSE(d.Observe(p));
  EXPECT_FALSE(d.Observe(p));
}

}  // namespace
}  // namespace rampart::agent
