// Contract tests for the rampart.v1 wire protocol (docs/protocol.md): every
// stream variant survives serialisation, the services have the documented
// shape, enums follow the UNSPECIFIED rule, the documented limits keep the
// worst-case messages under the message-size limits, every element of the
// .proto sources is documented, and the generated gRPC code (stubs, mocks,
// bidi streaming, size limits) behaves as the documentation says.

#include <grpcpp/grpcpp.h>
#include <grpcpp/test/mock_stream.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/event_types.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "rampart/v1/admin.grpc.pb.h"
#include "rampart/v1/admin_mock.grpc.pb.h"
#include "rampart/v1/agent.grpc.pb.h"
#include "rampart/v1/agent_mock.grpc.pb.h"
#include "rampart/v1/enrollment.grpc.pb.h"
#include "rampart/v1/enrollment_mock.grpc.pb.h"
#include "rampart/v1/limits.h"

namespace rampart::v1 {
namespace {

namespace pb = ::google::protobuf;
using ::google::protobuf::util::MessageDifferencer;
using ::testing::_;
using ::testing::DoAll;
using ::testing::Return;
using ::testing::SetArgPointee;

constexpr char kProtoPackage[] = "rampart.v1";
const std::vector<std::string>& ProtoFiles() {
  static const auto* files = new std::vector<std::string>{
      "rampart/v1/common.proto", "rampart/v1/policy.proto",
      "rampart/v1/agent.proto", "rampart/v1/enrollment.proto",
      "rampart/v1/admin.proto"};
  return *files;
}

// The generated pool, with every rampart.v1 file linked in. Touching one
// message per file forces the linker to keep its (static-library) object,
// which registers the file's descriptors.
const pb::DescriptorPool& Pool() {
  static const pb::DescriptorPool* pool = [] {
    (void)AgentMessage::descriptor();
    (void)StatusRequest::descriptor();
    (void)EnrollRequest::descriptor();
    (void)Policy::descriptor();
    (void)BanEntry::descriptor();
    return pb::DescriptorPool::generated_pool();
  }();
  return *pool;
}

// ---------------------------------------------------------------------------
// Sample and worst-case messages.

pb::Timestamp Ts(int64_t seconds, int32_t nanos = 0) {
  pb::Timestamp t;
  t.set_seconds(seconds);
  t.set_nanos(nanos);
  return t;
}

pb::Duration Dur(int64_t seconds, int32_t nanos = 0) {
  pb::Duration d;
  d.set_seconds(seconds);
  d.set_nanos(nanos);
  return d;
}

// Largest valid Timestamp (9999-12-31T23:59:59.999999999Z).
pb::Timestamp MaxTs() { return Ts(253402300799, 999999999); }

// A username that is not valid UTF-8 (attacker-controlled bytes).
const std::string& HostileUser() {
  static const auto* user = new std::string("adm\xff\xfe\xc0in\x00x", 10);
  return *user;
}

AuthEvent SampleEvent() {
  AuthEvent e;
  e.set_kind(EVENT_KIND_AUTH_FAILURE);
  e.set_protocol(PROTOCOL_IMAP);
  e.set_ip("198.51.100.7");
  e.set_user(HostileUser());
  *e.mutable_time() = Ts(1732353185);
  *e.mutable_observed_at() = Ts(1732353185, 250000000);
  e.set_log_time_text("11/23/2024 09:13:05 AM");
  e.set_log_source_id(1);
  e.set_line_offset(123456);
  return e;
}

// Every field at its documented maximum.
AuthEvent WorstCaseEvent() {
  AuthEvent e;
  e.set_kind(EVENT_KIND_AUTH_SUCCESS);
  e.set_protocol(PROTOCOL_HTTP);
  e.set_ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
  e.set_user(std::string(kMaxUserBytes, '\xff'));
  *e.mutable_time() = MaxTs();
  *e.mutable_observed_at() = MaxTs();
  e.set_log_time_text(std::string(kMaxLogTimeTextBytes, '9'));
  e.set_log_source_id(std::numeric_limits<uint32_t>::max());
  e.set_line_offset(std::numeric_limits<uint64_t>::max());
  return e;
}

BanEntry SampleBan(uint64_t id) {
  BanEntry b;
  b.set_id(id);
  b.set_prefix("203.0.113.0/24");
  *b.mutable_created_at() = Ts(1732353185);
  *b.mutable_expires_at() = Ts(1732356785);
  b.set_reason("score 12.4 >= 10: 31 AUTH_FAILURE on 4 servers");
  b.set_origin(BAN_ORIGIN_AUTO);
  b.set_escalation_level(2);
  b.set_scope(BAN_SCOPE_ALL_PORTS);
  b.set_revision(42);
  return b;
}

// Every field at its documented maximum.
BanEntry WorstCaseBan(uint64_t id) {
  BanEntry b;
  b.set_id(std::numeric_limits<uint64_t>::max() - id);
  std::string prefix = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128";
  EXPECT_EQ(prefix.size(), static_cast<size_t>(kMaxPrefixBytes));
  b.set_prefix(prefix);
  *b.mutable_created_at() = MaxTs();
  *b.mutable_expires_at() = MaxTs();
  b.set_reason(std::string(kMaxReasonBytes, 'r'));
  b.set_origin(BAN_ORIGIN_LOCAL_FALLBACK);
  b.set_escalation_level(std::numeric_limits<uint32_t>::max());
  b.set_scope(BAN_SCOPE_WEB);
  b.set_revision(std::numeric_limits<uint64_t>::max());
  return b;
}

Policy SamplePolicy() {
  Policy p;
  *p.mutable_half_life() = Dur(1800);
  p.set_ban_threshold(10.0);
  KindWeight* kw = p.add_kind_weights();
  kw->set_kind(EVENT_KIND_LOCKOUT);
  kw->set_weight(3.0);
  ProtocolWeight* pw = p.add_protocol_weights();
  pw->set_protocol(PROTOCOL_SMTP);
  pw->set_multiplier(1.5);
  p.set_cross_server_multiplier(2.0);
  *p.mutable_cross_server_window() = Dur(3600);
  p.set_cross_server_min_servers(2);
  *p.mutable_ban_base_duration() = Dur(3600);
  p.set_escalation_factor(4.0);
  *p.mutable_ban_max_duration() = Dur(30 * 86400);
  p.set_jitter_fraction(0.1);
  *p.mutable_history_clean_period() = Dur(30 * 86400);
  PrefixAggregation* agg = p.mutable_prefix_aggregation();
  agg->set_enabled(true);
  agg->set_v4_prefix_length(24);
  agg->set_v4_min_addresses(3);
  agg->set_v6_prefix_length(64);
  agg->set_v6_widen_prefix_length(48);
  agg->set_v6_widen_min_prefixes(3);
  AccountPolicy* acc = p.mutable_accounts();
  *acc->mutable_window() = Dur(3600);
  acc->set_min_distinct_ips(5);
  acc->set_min_failures(50);
  acc->set_success_after_failures_min_failures(3);
  *acc->mutable_success_after_failures_window() = Dur(3600);
  return p;
}

PolicyHint SamplePolicyHint() {
  PolicyHint h;
  *h.mutable_heartbeat_interval() = Dur(15);
  h.set_max_events_per_batch(1000);
  *h.mutable_batch_flush_interval() = Dur(0, 500000000);
  h.set_max_unacked_batches(32);
  h.set_max_spool_bytes(uint64_t{1} << 30);
  LocalFallback* lf = h.mutable_local_fallback();
  lf->set_enabled(true);
  *lf->mutable_activate_after() = Dur(60);
  lf->set_max_bans(1000);
  *lf->mutable_policy() = SamplePolicy();
  return h;
}

// One sample per AgentMessage payload variant, keyed by oneof field number.
std::map<int, AgentMessage> AgentSamples() {
  std::map<int, AgentMessage> out;
  {
    AgentMessage m;
    Hello* h = m.mutable_hello();
    h->set_agent_id("mail1.acme");
    h->set_site("fra");
    h->set_agent_version("0.1.0");
    h->set_hostname("mail1.acme.example");
    h->set_domino_server("CN=mail1/O=Acme");
    h->add_host_addresses("192.0.2.10");
    h->add_host_addresses("2001:db8::10");
    h->set_time_zone("Europe/Berlin");
    *h->mutable_agent_time() = Ts(1732353185);
    h->set_ban_list_epoch(0x1234567890abcdefULL);
    h->set_enforced_revision(41);
    h->set_spool_epoch(0xfedcba0987654321ULL);
    h->set_oldest_unacked_sequence(17);
    Capabilities* c = h->mutable_capabilities();
    c->set_firewall_backend("nftables");
    c->set_max_receive_message_bytes(4 << 20);
    c->set_max_firewall_entries(65536);
    c->set_ipv6(true);
    c->add_scopes(BAN_SCOPE_ALL_PORTS);
    c->add_scopes(BAN_SCOPE_MAIL);
    c->add_features("local-fallback");
    LogSource* src = h->add_log_sources();
    src->set_id(1);
    src->set_path("/local/notesdata/IBM_TECHNICAL_SUPPORT/console.log");
    out[AgentMessage::kHello] = m;
  }
  {
    AgentMessage m;
    EventBatch* b = m.mutable_event_batch();
    b->set_sequence(17);
    *b->add_events() = SampleEvent();
    AuthEvent* masked = b->add_events();
    masked->set_kind(EVENT_KIND_LOCKOUT);
    *masked->mutable_observed_at() = Ts(1732353186);
    *b->mutable_sealed_at() = Ts(1732353186);
    b->set_replayed(true);
    out[AgentMessage::kEventBatch] = m;
  }
  {
    AgentMessage m;
    Heartbeat* h = m.mutable_heartbeat();
    *h->mutable_agent_time() = Ts(1732353200);
    h->set_spool_depth_batches(3);
    h->set_spool_depth_bytes(4096);
    h->set_spool_dropped_batches(1);
    h->set_spool_dropped_events(1000);
    *h->mutable_tailer_lag() = Dur(2, 500000000);
    h->set_tailer_backlog_bytes(8192);
    h->set_lines_read(100000);
    h->set_events_parsed(2500);
    h->set_local_fallback_bans(2);
    out[AgentMessage::kHeartbeat] = m;
  }
  {
    AgentMessage m;
    EnforcedRevision* r = m.mutable_enforced_revision();
    r->set_ban_list_epoch(0x1234567890abcdefULL);
    r->set_revision(42);
    *r->mutable_applied_at() = Ts(1732353201);
    r->set_entry_count(1234);
    ApplyError* err = r->add_errors();
    err->set_ban_id(7);
    err->set_prefix("2001:db8::/64");
    err->set_message("ipv6 not supported by backend");
    out[AgentMessage::kEnforcedRevision] = m;
  }
  {
    AgentMessage m;
    BanEntry* b = m.mutable_local_ban_report()->add_bans();
    *b = SampleBan(0);
    b->set_origin(BAN_ORIGIN_LOCAL_FALLBACK);
    b->set_revision(0);
    out[AgentMessage::kLocalBanReport] = m;
  }
  return out;
}

// One sample per ServerMessage payload variant, keyed by oneof field number.
std::map<int, ServerMessage> ServerSamples() {
  std::map<int, ServerMessage> out;
  {
    ServerMessage m;
    Welcome* w = m.mutable_welcome();
    w->set_server_id("rampart-1");
    w->set_server_version("0.1.0");
    *w->mutable_server_time() = Ts(1732353185);
    w->set_ban_list_epoch(0x1234567890abcdefULL);
    w->set_current_revision(42);
    w->set_resync(RESYNC_MODE_DELTA);
    w->set_durable_through(16);
    StreamLimits* l = w->mutable_limits();
    l->set_max_message_bytes(kMaxMessageBytes);
    l->set_max_events_per_batch(kMaxEventsPerBatch);
    l->set_max_user_bytes(kMaxUserBytes);
    *w->mutable_policy_hint() = SamplePolicyHint();
    out[ServerMessage::kWelcome] = m;
  }
  {
    ServerMessage m;
    BatchAck* a = m.mutable_batch_ack();
    a->set_durable_through(17);
    a->add_sequences(17);
    a->add_sequences(19);
    BatchRejection* rej = a->add_rejected();
    rej->set_sequence(18);
    rej->set_code(3);
    rej->set_message("batch has 6000 events; limit 5000");
    out[ServerMessage::kBatchAck] = m;
  }
  {
    ServerMessage m;
    BanListSnapshot* s = m.mutable_snapshot();
    s->set_snapshot_id(1);
    s->set_ban_list_epoch(0x1234567890abcdefULL);
    s->set_revision(42);
    s->set_chunk_index(0);
    s->set_final_chunk(true);
    s->set_total_entries(2);
    *s->add_entries() = SampleBan(1);
    BanEntry* permanent = s->add_entries();
    *permanent = SampleBan(2);
    permanent->clear_expires_at();
    permanent->set_origin(BAN_ORIGIN_MANUAL);
    out[ServerMessage::kSnapshot] = m;
  }
  {
    ServerMessage m;
    BanListDelta* d = m.mutable_delta();
    d->set_ban_list_epoch(0x1234567890abcdefULL);
    d->set_from_revision(42);
    d->set_to_revision(45);
    BanChange* add = d->add_changes();
    add->set_op(BAN_CHANGE_OP_ADD);
    *add->mutable_entry() = SampleBan(3);
    BanChange* remove = d->add_changes();
    remove->set_op(BAN_CHANGE_OP_REMOVE);
    remove->mutable_entry()->set_id(1);
    remove->mutable_entry()->set_prefix("203.0.113.0/24");
    BanChange* update = d->add_changes();
    update->set_op(BAN_CHANGE_OP_UPDATE);
    *update->mutable_entry() = SampleBan(2);
    out[ServerMessage::kDelta] = m;
  }
  {
    ServerMessage m;
    *m.mutable_policy_hint() = SamplePolicyHint();
    out[ServerMessage::kPolicyHint] = m;
  }
  {
    ServerMessage m;
    Notice* n = m.mutable_notice();
    n->set_code(3);
    n->set_message("3 events of batch 17 dropped: invalid ip");
    n->set_batch_sequence(17);
    *n->mutable_retry_after() = Dur(5);
    out[ServerMessage::kNotice] = m;
  }
  return out;
}

// Serialises `in`, parses the bytes into a fresh message of the same type
// and expects it to equal `in`.
template <typename M>
void ExpectRoundTrip(const M& in) {
  std::string bytes;
  ASSERT_TRUE(in.SerializeToString(&bytes));
  ASSERT_FALSE(bytes.empty());
  M out;
  ASSERT_TRUE(out.ParseFromString(bytes)) << in.DebugString();
  EXPECT_EQ(out.payload_case(), in.payload_case());
  EXPECT_TRUE(MessageDifferencer::Equals(in, out))
      << "in:\n"
      << in.DebugString() << "out:\n"
      << out.DebugString();
}

// Field numbers of the members of `message`'s oneof "payload".
std::set<int> PayloadFieldNumbers(const pb::Descriptor* message) {
  const pb::OneofDescriptor* oneof = message->FindOneofByName("payload");
  EXPECT_NE(oneof, nullptr) << message->full_name();
  std::set<int> numbers;
  for (int i = 0; oneof != nullptr && i < oneof->field_count(); ++i) {
    numbers.insert(oneof->field(i)->number());
  }
  return numbers;
}

// ---------------------------------------------------------------------------
// Round trips.

TEST(ProtoContractTest, EveryAgentMessageVariantRoundTrips) {
  std::map<int, AgentMessage> samples = AgentSamples();
  std::set<int> covered;
  for (const auto& [number, message] : samples) {
    SCOPED_TRACE(number);
    EXPECT_EQ(static_cast<int>(message.payload_case()), number);
    ExpectRoundTrip(message);
    covered.insert(number);
  }
  // A new variant must come with a sample here.
  EXPECT_EQ(covered, PayloadFieldNumbers(AgentMessage::descriptor()));
}

TEST(ProtoContractTest, EveryServerMessageVariantRoundTrips) {
  std::map<int, ServerMessage> samples = ServerSamples();
  std::set<int> covered;
  for (const auto& [number, message] : samples) {
    SCOPED_TRACE(number);
    EXPECT_EQ(static_cast<int>(message.payload_case()), number);
    ExpectRoundTrip(message);
    covered.insert(number);
  }
  EXPECT_EQ(covered, PayloadFieldNumbers(ServerMessage::descriptor()));
}

TEST(ProtoContractTest, NonUtf8UserSurvivesTheWire) {
  // A proto3 `string` holding invalid UTF-8 fails to parse in C++, which
  // would let one hostile log line kill an agent's stream. User names are
  // therefore `bytes` everywhere they travel.
  for (const pb::Descriptor* d :
       {AuthEvent::descriptor(), AccountInfo::descriptor(), Alert::descriptor(),
        UserAttemptCount::descriptor()}) {
    const pb::FieldDescriptor* user = d->FindFieldByName("user");
    ASSERT_NE(user, nullptr) << d->full_name();
    EXPECT_EQ(user->type(), pb::FieldDescriptor::TYPE_BYTES) << d->full_name();
  }
  AgentMessage m = AgentSamples().at(AgentMessage::kEventBatch);
  std::string bytes = m.SerializeAsString();
  AgentMessage parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.event_batch().events(0).user(), HostileUser());
}

TEST(ProtoContractTest, AbsentExpiryMeansPermanent) {
  BanEntry permanent = SampleBan(9);
  permanent.clear_expires_at();
  BanEntry parsed;
  ASSERT_TRUE(parsed.ParseFromString(permanent.SerializeAsString()));
  EXPECT_FALSE(parsed.has_expires_at());
  EXPECT_TRUE(SampleBan(9).has_expires_at());
}

// ---------------------------------------------------------------------------
// Service shapes.

struct MethodShape {
  std::string name;
  std::string input;
  std::string output;
  bool client_streaming;
  bool server_streaming;
};

void ExpectServiceShape(const std::string& service_name,
                        const std::vector<MethodShape>& expected) {
  const pb::ServiceDescriptor* service =
      Pool().FindServiceByName(std::string(kProtoPackage) + "." + service_name);
  ASSERT_NE(service, nullptr) << service_name;
  EXPECT_EQ(service->method_count(), static_cast<int>(expected.size()))
      << service_name << " has methods the contract test does not know";
  for (const MethodShape& shape : expected) {
    SCOPED_TRACE(service_name + "." + shape.name);
    const pb::MethodDescriptor* m = service->FindMethodByName(shape.name);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->input_type()->full_name(),
              std::string(kProtoPackage) + "." + shape.input);
    EXPECT_EQ(m->output_type()->full_name(),
              std::string(kProtoPackage) + "." + shape.output);
    EXPECT_EQ(m->client_streaming(), shape.client_streaming);
    EXPECT_EQ(m->server_streaming(), shape.server_streaming);
  }
}

TEST(ProtoContractTest, AgentServiceConnectIsBidiStreaming) {
  ExpectServiceShape("AgentService", {{"Connect", "AgentMessage",
                                       "ServerMessage", true, true}});
  EXPECT_STREQ(AgentService::service_full_name(), "rampart.v1.AgentService");
}

TEST(ProtoContractTest, EnrollmentServiceEnrollIsUnary) {
  ExpectServiceShape("EnrollmentService", {{"Enroll", "EnrollRequest",
                                            "EnrollResponse", false, false}});
  EXPECT_STREQ(EnrollmentService::service_full_name(),
               "rampart.v1.EnrollmentService");
}

TEST(ProtoContractTest, AdminServiceMethodsAndStreamingFlags) {
  auto unary = [](const std::string& name) {
    return MethodShape{name, name + "Request", name + "Response", false, false};
  };
  ExpectServiceShape("AdminService", {
                                         unary("Status"),
                                         unary("ListBans"),
                                         unary("GetBan"),
                                         unary("AddBan"),
                                         unary("RemoveBan"),
                                         unary("LookupIp"),
                                         unary("ListAllow"),
                                         unary("AddAllow"),
                                         unary("RemoveAllow"),
                                         unary("ListAgents"),
                                         unary("ListAccounts"),
                                         unary("ListAlerts"),
                                         {"WatchAlerts", "WatchAlertsRequest",
                                          "WatchAlertsResponse", false, true},
                                         unary("Report"),
                                         {"Export", "ExportRequest",
                                          "ExportChunk", false, true},
                                         unary("Import"),
                                         unary("ListAudit"),
                                         unary("EnrollAgent"),
                                         unary("RevokeAgent"),
                                         unary("SetAgentProtection"),
                                         unary("DryRunPolicy"),
                                     });
  EXPECT_STREQ(AdminService::service_full_name(), "rampart.v1.AdminService");
}

// ---------------------------------------------------------------------------
// Enums.

// "BanScope" -> "BAN_SCOPE".
std::string UpperSnake(const std::string& camel) {
  std::string out;
  for (size_t i = 0; i < camel.size(); ++i) {
    char c = camel[i];
    if (c >= 'A' && c <= 'Z') {
      if (i > 0) {
        out.push_back('_');
      }
      out.push_back(c);
    } else {
      out.push_back(static_cast<char>(c - 'a' + 'A'));
    }
  }
  return out;
}

void CollectEnums(const pb::Descriptor* message,
                  std::vector<const pb::EnumDescriptor*>* out) {
  for (int i = 0; i < message->enum_type_count(); ++i) {
    out->push_back(message->enum_type(i));
  }
  for (int i = 0; i < message->nested_type_count(); ++i) {
    CollectEnums(message->nested_type(i), out);
  }
}

std::vector<const pb::EnumDescriptor*> AllEnums() {
  std::vector<const pb::EnumDescriptor*> enums;
  for (const std::string& name : ProtoFiles()) {
    const pb::FileDescriptor* file = Pool().FindFileByName(name);
    EXPECT_NE(file, nullptr) << name;
    if (file == nullptr) {
      continue;
    }
    EXPECT_EQ(file->package(), kProtoPackage);
    for (int i = 0; i < file->enum_type_count(); ++i) {
      enums.push_back(file->enum_type(i));
    }
    for (int i = 0; i < file->message_type_count(); ++i) {
      CollectEnums(file->message_type(i), &enums);
    }
  }
  return enums;
}

TEST(ProtoContractTest, EveryEnumStartsWithPrefixedUnspecifiedZero) {
  std::vector<const pb::EnumDescriptor*> enums = AllEnums();
  ASSERT_GE(enums.size(), 10u);
  for (const pb::EnumDescriptor* e : enums) {
    SCOPED_TRACE(e->full_name());
    const std::string prefix = UpperSnake(e->name()) + "_";
    const pb::EnumValueDescriptor* zero = e->FindValueByNumber(0);
    ASSERT_NE(zero, nullptr);
    EXPECT_EQ(zero->name(), prefix + "UNSPECIFIED");
    EXPECT_EQ(e->value(0), zero);
    for (int i = 0; i < e->value_count(); ++i) {
      EXPECT_EQ(e->value(i)->name().rfind(prefix, 0), 0u)
          << e->value(i)->name() << " lacks prefix " << prefix;
    }
  }
}

TEST(ProtoContractTest, EnumNumbersMatchDomainVocabulary) {
  // common.proto promises the numbering of common/event_types.h.
  EXPECT_EQ(static_cast<int>(rampart::EventKind::kAuthFailure),
            EVENT_KIND_AUTH_FAILURE);
  EXPECT_EQ(static_cast<int>(rampart::EventKind::kLockout), EVENT_KIND_LOCKOUT);
  EXPECT_EQ(static_cast<int>(rampart::EventKind::kPolicyReject),
            EVENT_KIND_POLICY_REJECT);
  EXPECT_EQ(static_cast<int>(rampart::EventKind::kConnect), EVENT_KIND_CONNECT);
  EXPECT_EQ(static_cast<int>(rampart::EventKind::kDisconnect),
            EVENT_KIND_DISCONNECT);
  EXPECT_EQ(static_cast<int>(rampart::EventKind::kTlsFailure),
            EVENT_KIND_TLS_FAILURE);
  EXPECT_EQ(static_cast<int>(rampart::EventKind::kAuthSuccess),
            EVENT_KIND_AUTH_SUCCESS);
  EXPECT_EQ(EventKind_descriptor()->value_count(), 8);
  EXPECT_EQ(static_cast<int>(rampart::Protocol::kUnknown),
            PROTOCOL_UNSPECIFIED);
  EXPECT_EQ(static_cast<int>(rampart::Protocol::kSmtp), PROTOCOL_SMTP);
  EXPECT_EQ(static_cast<int>(rampart::Protocol::kImap), PROTOCOL_IMAP);
  EXPECT_EQ(static_cast<int>(rampart::Protocol::kPop3), PROTOCOL_POP3);
  EXPECT_EQ(static_cast<int>(rampart::Protocol::kLdap), PROTOCOL_LDAP);
  EXPECT_EQ(static_cast<int>(rampart::Protocol::kHttp), PROTOCOL_HTTP);
  EXPECT_EQ(Protocol_descriptor()->value_count(), 6);
}

TEST(ProtoContractTest, PolicyKnobsHaveExplicitPresence) {
  // "Absent = live value / default" needs presence on every singular field.
  for (const pb::Descriptor* d :
       {Policy::descriptor(), PrefixAggregation::descriptor(),
        AccountPolicy::descriptor(), LocalFallback::descriptor(),
        PolicyHint::descriptor()}) {
    for (int i = 0; i < d->field_count(); ++i) {
      const pb::FieldDescriptor* f = d->field(i);
      if (f->is_repeated()) {
        continue;
      }
      EXPECT_TRUE(f->has_presence()) << f->full_name();
    }
  }
}

// ---------------------------------------------------------------------------
// Size limits.

TEST(ProtoContractTest, HundredThousandBanSnapshotFitsWhenChunked) {
  constexpr int kEntries = 100000;
  std::vector<BanEntry> entries;
  entries.reserve(kEntries);
  for (int i = 0; i < kEntries; ++i) {
    entries.push_back(WorstCaseBan(static_cast<uint64_t>(i)));
  }

  // Unchunked, the list does not fit a default-sized message.
  {
    ServerMessage whole;
    for (const BanEntry& e : entries) {
      *whole.mutable_snapshot()->add_entries() = e;
    }
    EXPECT_GT(whole.ByteSizeLong(), static_cast<size_t>(kMaxMessageBytes));
  }

  // Chunked by the documented chunk size, every chunk fits even the smallest
  // receive limit an agent may advertise.
  std::vector<std::string> wire;
  for (int start = 0, index = 0; start < kEntries;
       start += kMaxSnapshotChunkEntries, ++index) {
    ServerMessage m;
    BanListSnapshot* s = m.mutable_snapshot();
    s->set_snapshot_id(7);
    s->set_ban_list_epoch(std::numeric_limits<uint64_t>::max());
    s->set_revision(std::numeric_limits<uint64_t>::max());
    s->set_chunk_index(static_cast<uint32_t>(index));
    s->set_total_entries(kEntries);
    const int end = std::min(start + kMaxSnapshotChunkEntries, kEntries);
    s->set_final_chunk(end == kEntries);
    for (int i = start; i < end; ++i) {
      *s->add_entries() = entries[static_cast<size_t>(i)];
    }
    EXPECT_LE(m.ByteSizeLong(),
              static_cast<size_t>(kMinAgentReceiveMessageBytes));
    EXPECT_LT(m.ByteSizeLong(), static_cast<size_t>(kMaxMessageBytes));
    if (index == 0) {
      ::testing::Test::RecordProperty("worst_case_chunk_bytes",
                                      std::to_string(m.ByteSizeLong()));
    }
    wire.push_back(m.SerializeAsString());
  }
  EXPECT_EQ(wire.size(),
            static_cast<size_t>(kEntries / kMaxSnapshotChunkEntries));

  // The agent's reassembly: contiguous indexes, final flag only on the last
  // chunk, the total matches, entries arrive intact and in order.
  std::vector<BanEntry> assembled;
  uint32_t expected_index = 0;
  bool saw_final = false;
  for (const std::string& bytes : wire) {
    ServerMessage m;
    ASSERT_TRUE(m.ParseFromString(bytes));
    ASSERT_EQ(m.payload_case(), ServerMessage::kSnapshot);
    const BanListSnapshot& s = m.snapshot();
    EXPECT_FALSE(saw_final);
    EXPECT_EQ(s.chunk_index(), expected_index++);
    EXPECT_EQ(s.total_entries(), static_cast<uint32_t>(kEntries));
    saw_final = s.final_chunk();
    assembled.insert(assembled.end(), s.entries().begin(), s.entries().end());
  }
  EXPECT_TRUE(saw_final);
  ASSERT_EQ(assembled.size(), entries.size());
  EXPECT_TRUE(MessageDifferencer::Equals(assembled.front(), entries.front()));
  EXPECT_TRUE(MessageDifferencer::Equals(assembled.back(), entries.back()));
}

TEST(ProtoContractTest, WorstCaseEventBatchFitsMessageLimit) {
  AgentMessage m;
  EventBatch* b = m.mutable_event_batch();
  b->set_sequence(std::numeric_limits<uint64_t>::max());
  *b->mutable_sealed_at() = MaxTs();
  b->set_replayed(true);
  for (int i = 0; i < kMaxEventsPerBatch; ++i) {
    *b->add_events() = WorstCaseEvent();
  }
  EXPECT_LT(m.ByteSizeLong(), static_cast<size_t>(kMaxMessageBytes));
  ::testing::Test::RecordProperty("worst_case_event_batch_bytes",
                                  std::to_string(m.ByteSizeLong()));
}

TEST(ProtoContractTest, WorstCaseDeltaFitsSmallestAgentLimit) {
  ServerMessage m;
  BanListDelta* d = m.mutable_delta();
  d->set_ban_list_epoch(std::numeric_limits<uint64_t>::max());
  d->set_from_revision(std::numeric_limits<uint64_t>::max() - 1);
  d->set_to_revision(std::numeric_limits<uint64_t>::max());
  for (int i = 0; i < kMaxDeltaChanges; ++i) {
    BanChange* c = d->add_changes();
    c->set_op(BAN_CHANGE_OP_UPDATE);
    *c->mutable_entry() = WorstCaseBan(static_cast<uint64_t>(i));
  }
  EXPECT_LE(m.ByteSizeLong(),
            static_cast<size_t>(kMinAgentReceiveMessageBytes));
  ::testing::Test::RecordProperty("worst_case_delta_bytes",
                                  std::to_string(m.ByteSizeLong()));
}

TEST(ProtoContractTest, WorstCaseLocalBanReportFitsMessageLimit) {
  AgentMessage m;
  for (int i = 0; i < kMaxLocalBans; ++i) {
    *m.mutable_local_ban_report()->add_bans() =
        WorstCaseBan(static_cast<uint64_t>(i));
  }
  EXPECT_LT(m.ByteSizeLong(), static_cast<size_t>(kMaxMessageBytes));
  ::testing::Test::RecordProperty("worst_case_local_ban_report_bytes",
                                  std::to_string(m.ByteSizeLong()));
}

// ---------------------------------------------------------------------------
// Documentation: every element of the .proto sources carries a comment.

// Reads the descriptor set (with source info) that protoc wrote at build
// time and builds a fresh pool from it.
std::unique_ptr<pb::DescriptorPool> SourcePool() {
  std::ifstream in(RAMPART_PROTO_DESCRIPTOR_SET, std::ios::binary);
  EXPECT_TRUE(in.good()) << RAMPART_PROTO_DESCRIPTOR_SET;
  std::stringstream bytes;
  bytes << in.rdbuf();
  pb::FileDescriptorSet set;
  EXPECT_TRUE(set.ParseFromString(bytes.str()));
  auto pool = std::make_unique<pb::DescriptorPool>();
  for (const pb::FileDescriptorProto& file : set.file()) {
    EXPECT_NE(pool->BuildFile(file), nullptr) << file.name();
  }
  return pool;
}

template <typename D>
void ExpectDocumented(const D* d, std::vector<std::string>* undocumented) {
  pb::SourceLocation loc;
  if (!d->GetSourceLocation(&loc) ||
      (loc.leading_comments.empty() && loc.trailing_comments.empty())) {
    undocumented->push_back(d->full_name());
  }
}

void CheckMessageDocs(const pb::Descriptor* m, std::vector<std::string>* out) {
  ExpectDocumented(m, out);
  for (int i = 0; i < m->field_count(); ++i) {
    ExpectDocumented(m->field(i), out);
  }
  for (int i = 0; i < m->real_oneof_decl_count(); ++i) {
    ExpectDocumented(m->oneof_decl(i), out);
  }
  for (int i = 0; i < m->enum_type_count(); ++i) {
    ExpectDocumented(m->enum_type(i), out);
    for (int j = 0; j < m->enum_type(i)->value_count(); ++j) {
      ExpectDocumented(m->enum_type(i)->value(j), out);
    }
  }
  for (int i = 0; i < m->nested_type_count(); ++i) {
    CheckMessageDocs(m->nested_type(i), out);
  }
}

TEST(ProtoContractTest, EveryProtoElementIsDocumented) {
  std::unique_ptr<pb::DescriptorPool> source_pool = SourcePool();
  std::vector<std::string> undocumented;
  for (const std::string& name : ProtoFiles()) {
    const pb::FileDescriptor* file = source_pool->FindFileByName(name);
    ASSERT_NE(file, nullptr) << name;
    // The sources define exactly what the generated code was built from.
    const pb::FileDescriptor* generated = Pool().FindFileByName(name);
    ASSERT_NE(generated, nullptr);
    pb::FileDescriptorProto from_source, from_generated;
    file->CopyTo(&from_source);
    generated->CopyTo(&from_generated);
    // Normalise: the set from protoc records json_name explicitly.
    file->CopyJsonNameTo(&from_source);
    generated->CopyJsonNameTo(&from_generated);
    std::string diff;
    MessageDifferencer differencer;
    differencer.ReportDifferencesToString(&diff);
    EXPECT_TRUE(differencer.Compare(from_source, from_generated))
        << name << " differs from the generated code (rebuild rampart_proto):\n"
        << diff;

    for (int i = 0; i < file->message_type_count(); ++i) {
      CheckMessageDocs(file->message_type(i), &undocumented);
    }
    for (int i = 0; i < file->enum_type_count(); ++i) {
      ExpectDocumented(file->enum_type(i), &undocumented);
      for (int j = 0; j < file->enum_type(i)->value_count(); ++j) {
        ExpectDocumented(file->enum_type(i)->value(j), &undocumented);
      }
    }
    for (int i = 0; i < file->service_count(); ++i) {
      ExpectDocumented(file->service(i), &undocumented);
      for (int j = 0; j < file->service(i)->method_count(); ++j) {
        ExpectDocumented(file->service(i)->method(j), &undocumented);
      }
    }
  }
  EXPECT_TRUE(undocumented.empty())
      << "undocumented: " << ::testing::PrintToString(undocumented);
}

// ---------------------------------------------------------------------------
// Generated gRPC code.

TEST(ProtoContractTest, MockStubIsGenerated) {
  MockEnrollmentServiceStub mock;
  EnrollResponse canned;
  canned.set_agent_id("mail1.acme");
  canned.set_certificate_chain_pem("-----BEGIN CERTIFICATE-----\n...");
  EXPECT_CALL(mock, Enroll(_, _, _))
      .WillOnce(DoAll(SetArgPointee<2>(canned), Return(grpc::Status::OK)));

  EnrollmentService::StubInterface& stub = mock;
  grpc::ClientContext context;
  EnrollRequest request;
  request.set_agent_id("mail1.acme");
  EnrollResponse response;
  ASSERT_TRUE(stub.Enroll(&context, request, &response).ok());
  EXPECT_EQ(response.agent_id(), "mail1.acme");
}

TEST(ProtoContractTest, BidiMockStubDrivesAgentClientCode) {
  // Agent client code is testable against the generated mock stub and
  // grpcpp/test/mock_stream.h (CONVENTIONS.md, "Testing gRPC code").
  MockAgentServiceStub mock;
  auto* stream =
      new grpc::testing::MockClientReaderWriter<AgentMessage, ServerMessage>();
  ServerMessage welcome = ServerSamples().at(ServerMessage::kWelcome);
  EXPECT_CALL(*stream, Write(_, _)).WillOnce(Return(true));
  EXPECT_CALL(*stream, Read(_))
      .WillOnce(DoAll(SetArgPointee<0>(welcome), Return(true)))
      .WillOnce(Return(false));
  EXPECT_CALL(*stream, WritesDone()).WillOnce(Return(true));
  EXPECT_CALL(*stream, Finish()).WillOnce(Return(grpc::Status::OK));
  EXPECT_CALL(mock, ConnectRaw(_)).WillOnce(Return(stream));  // Owns it.

  AgentService::StubInterface& stub = mock;
  grpc::ClientContext context;
  auto connect = stub.Connect(&context);
  ASSERT_TRUE(connect->Write(AgentSamples().at(AgentMessage::kHello)));
  ServerMessage in;
  ASSERT_TRUE(connect->Read(&in));
  EXPECT_EQ(in.welcome().resync(), RESYNC_MODE_DELTA);
  EXPECT_FALSE(connect->Read(&in));
  EXPECT_TRUE(connect->WritesDone());
  EXPECT_TRUE(connect->Finish().ok());
}

// A minimal in-process AgentService: answers Hello with Welcome, acks every
// batch, and ends the stream OK when the agent half-closes.
class EchoAgentService final : public AgentService::Service {
 public:
  grpc::Status Connect(
      grpc::ServerContext* /*context*/,
      grpc::ServerReaderWriter<ServerMessage, AgentMessage>* stream) override {
    AgentMessage in;
    if (!stream->Read(&in) || !in.has_hello()) {
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          "first message must be Hello");
    }
    ServerMessage welcome;
    welcome.mutable_welcome()->set_server_id("test-server");
    welcome.mutable_welcome()->set_resync(RESYNC_MODE_UP_TO_DATE);
    stream->Write(welcome);
    while (stream->Read(&in)) {
      if (in.has_event_batch()) {
        ServerMessage ack;
        ack.mutable_batch_ack()->set_durable_through(
            in.event_batch().sequence());
        ack.mutable_batch_ack()->add_sequences(in.event_batch().sequence());
        stream->Write(ack);
      }
    }
    return grpc::Status::OK;
  }
};

class InProcessAgentServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    grpc::ServerBuilder builder;
    builder.RegisterService(&service_);
    builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxMessageBytes));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = AgentService::NewStub(server_->InProcessChannel({}));
  }
  void TearDown() override {
    if (server_ != nullptr) {
      server_->Shutdown();
    }
  }

  EchoAgentService service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<AgentService::Stub> stub_;
};

TEST_F(InProcessAgentServiceTest, HelloWelcomeBatchAck) {
  grpc::ClientContext context;
  auto stream = stub_->Connect(&context);
  ASSERT_TRUE(stream->Write(AgentSamples().at(AgentMessage::kHello)));
  ServerMessage in;
  ASSERT_TRUE(stream->Read(&in));
  ASSERT_TRUE(in.has_welcome());
  EXPECT_EQ(in.welcome().server_id(), "test-server");

  ASSERT_TRUE(stream->Write(AgentSamples().at(AgentMessage::kEventBatch)));
  ASSERT_TRUE(stream->Read(&in));
  ASSERT_TRUE(in.has_batch_ack());
  EXPECT_EQ(in.batch_ack().durable_through(), 17u);

  ASSERT_TRUE(stream->WritesDone());
  EXPECT_FALSE(stream->Read(&in));
  grpc::Status status = stream->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(InProcessAgentServiceTest, OversizedMessageEndsStreamExhausted) {
  grpc::ClientContext context;
  auto stream = stub_->Connect(&context);
  ASSERT_TRUE(stream->Write(AgentSamples().at(AgentMessage::kHello)));
  ServerMessage in;
  ASSERT_TRUE(stream->Read(&in));

  AgentMessage big;
  big.mutable_event_batch()->set_sequence(18);
  AuthEvent e = WorstCaseEvent();
  while (big.ByteSizeLong() <= static_cast<size_t>(kMaxMessageBytes)) {
    for (int i = 0; i < 1000; ++i) {
      *big.mutable_event_batch()->add_events() = e;
    }
  }
  stream->Write(big);  // May or may not report failure; Finish decides.
  stream->WritesDone();
  while (stream->Read(&in)) {
  }
  grpc::Status status = stream->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << status.error_message();
}

}  // namespace
}  // namespace rampart::v1
