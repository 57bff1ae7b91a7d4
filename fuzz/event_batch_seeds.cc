// Writes the seed corpus of event_batch_fuzzer (fuzz/corpus/event_batch/):
// a selector byte (even: AgentMessage for the server, odd: ServerMessage for
// the agent) followed by a serialized message. The committed seeds were
// made with `build-asan/bin/event_batch_seeds fuzz/corpus/event_batch`.

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/time/time.h"
#include "rampart/v1/agent.pb.h"

namespace {

namespace v1 = rampart::v1;

const int64_t kNow = 1732352400;  // the fuzzer's server clock, 2024-11-23

bool Write(const std::string& dir, const std::string& name, char selector,
           const google::protobuf::Message& m) {
  const std::string path = dir + "/" + name;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) {
    std::perror(path.c_str());
    return false;
  }
  const std::string bytes = std::string(1, selector) + m.SerializeAsString();
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

v1::AuthEvent Event(v1::EventKind kind, v1::Protocol protocol,
                    const std::string& ip, const std::string& user,
                    int64_t seconds_ago) {
  v1::AuthEvent e;
  e.set_kind(kind);
  e.set_protocol(protocol);
  e.set_ip(ip);
  e.set_user(user);
  e.mutable_time()->set_seconds(kNow - seconds_ago);
  e.mutable_observed_at()->set_seconds(kNow - seconds_ago + 1);
  e.mutable_observed_at()->set_nanos(250000000);
  e.set_log_time_text("11/23/2024 09:13:05 AM");
  e.set_log_source_id(1);
  e.set_line_offset(4096);
  return e;
}

v1::BanEntry Entry(uint64_t id, const std::string& prefix, bool expires) {
  v1::BanEntry e;
  e.set_id(id);
  e.set_prefix(prefix);
  e.mutable_created_at()->set_seconds(kNow - 600);
  if (expires) {
    e.mutable_expires_at()->set_seconds(kNow + 3600);
  }
  e.set_reason("score 12.4 >= 10 from 3 servers");
  e.set_origin(v1::BAN_ORIGIN_AUTO);
  e.set_scope(v1::BAN_SCOPE_ALL_PORTS);
  e.set_revision(id + 100);
  return e;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  bool ok = true;

  v1::AgentMessage hello;
  v1::Hello* h = hello.mutable_hello();
  h->set_agent_id("mail1.example");
  h->set_site("Berlin-DC1");
  h->set_agent_version("0.1.0");
  h->set_hostname("mail1.example.com");
  h->set_domino_server("CN=mail1/O=Acme");
  h->add_host_addresses("192.0.2.10");
  h->add_host_addresses("2001:db8::10");
  h->set_time_zone("Europe/Berlin");
  h->mutable_agent_time()->set_seconds(kNow);
  h->set_ban_list_epoch(7);
  h->set_enforced_revision(120);
  h->set_spool_epoch(42);
  h->set_oldest_unacked_sequence(3);
  h->mutable_capabilities()->set_firewall_backend("nftables");
  h->mutable_capabilities()->set_ipv6(true);
  h->mutable_capabilities()->add_features("delta-v2");
  v1::LogSource* source = h->add_log_sources();
  source->set_id(1);
  source->set_path("/local/notesdata/IBM_TECHNICAL_SUPPORT/console.log");
  ok &= Write(dir, "seed00_hello", 0, hello);

  v1::AgentMessage batch;
  v1::EventBatch* b = batch.mutable_event_batch();
  b->set_sequence(3);
  b->mutable_sealed_at()->set_seconds(kNow);
  *b->add_events() = Event(v1::EVENT_KIND_AUTH_FAILURE, v1::PROTOCOL_SMTP,
                           "198.51.100.7", "admin", 30);
  *b->add_events() = Event(v1::EVENT_KIND_AUTH_FAILURE, v1::PROTOCOL_IMAP,
                           "2001:db8::7", std::string("J\xFCrgen\0x", 8), 20);
  *b->add_events() =
      Event(v1::EVENT_KIND_LOCKOUT, v1::PROTOCOL_HTTP, "203.0.113.9", "", 10);
  ok &= Write(dir, "seed01_batch", 0, batch);

  v1::AgentMessage mixed;
  v1::EventBatch* m = mixed.mutable_event_batch();
  m->set_sequence(17);
  m->set_replayed(true);
  *m->add_events() = Event(v1::EVENT_KIND_CONNECT, v1::PROTOCOL_POP3,
                           "::ffff:198.51.100.8", "", 5);
  *m->add_events() =
      Event(v1::EVENT_KIND_TLS_FAILURE, v1::PROTOCOL_LDAP, "not-an-ip", "x", 5);
  v1::AuthEvent no_time =
      Event(v1::EVENT_KIND_POLICY_REJECT, v1::PROTOCOL_SMTP, "", "bob", 5);
  no_time.clear_time();
  *m->add_events() = no_time;
  v1::AuthEvent late = Event(v1::EVENT_KIND_AUTH_SUCCESS,
                             v1::PROTOCOL_UNSPECIFIED, "192.0.2.1", "eve", 0);
  late.mutable_time()->set_seconds(kNow + 3 * 3600);  // after observed_at
  *m->add_events() = late;
  *m->add_events() = Event(v1::EVENT_KIND_DISCONNECT, v1::PROTOCOL_SMTP,
                           "198.51.100.9", "old", 60LL * 24 * 3600 * 40);
  ok &= Write(dir, "seed02_mixed_batch", 0, mixed);

  v1::ServerMessage delta;
  v1::BanListDelta* d = delta.mutable_delta();
  d->set_ban_list_epoch(7);
  d->set_from_revision(120);
  d->set_to_revision(123);
  v1::BanChange* c = d->add_changes();
  c->set_op(v1::BAN_CHANGE_OP_ADD);
  *c->mutable_entry() = Entry(51, "198.51.100.7/32", true);
  c = d->add_changes();
  c->set_op(v1::BAN_CHANGE_OP_UPDATE);
  *c->mutable_entry() = Entry(48, "2001:db8:1::/48", false);
  c = d->add_changes();
  c->set_op(v1::BAN_CHANGE_OP_REMOVE);
  *c->mutable_entry() = Entry(12, "203.0.113.0/24", true);
  ok &= Write(dir, "seed03_delta", 1, delta);

  v1::ServerMessage snapshot;
  v1::BanListSnapshot* s = snapshot.mutable_snapshot();
  s->set_snapshot_id(9);
  s->set_ban_list_epoch(7);
  s->set_revision(123);
  s->set_chunk_index(0);
  s->set_final_chunk(true);
  s->set_total_entries(3);
  *s->add_entries() = Entry(12, "203.0.113.0/24", true);
  *s->add_entries() = Entry(48, "2001:db8:1::/48", false);
  *s->add_entries() = Entry(51, "198.51.100.7/32", true);
  ok &= Write(dir, "seed04_snapshot", 1, snapshot);

  return ok ? 0 : 1;
}
