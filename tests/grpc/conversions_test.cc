#include "server/grpc/conversions.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rampart/v1/limits.h"

namespace rampart::server {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

const absl::Time kNow = absl::FromUnixSeconds(1709719200);

v1::AuthEvent Event(const std::string& ip = "198.51.100.7",
                    absl::Time t = kNow) {
  v1::AuthEvent e;
  e.set_kind(v1::EVENT_KIND_AUTH_FAILURE);
  e.set_protocol(v1::PROTOCOL_SMTP);
  e.set_ip(ip);
  e.set_user(
      std::string("J\xFC"
                  "rgen\0x",
                  8));
  e.mutable_time()->set_seconds(absl::ToUnixSeconds(t));
  return e;
}

TEST(ConversionsTest, EventRoundTripsIntoTheDomain) {
  absl::StatusOr<AuthEvent> e =
      ToDomain(Event("::ffff:198.51.100.7"), "mail1", kNow);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->agent_id, "mail1");
  EXPECT_EQ(e->kind, EventKind::kAuthFailure);
  EXPECT_EQ(e->protocol, Protocol::kSmtp);
  EXPECT_EQ(e->ip->ToString(), "198.51.100.7");
  EXPECT_EQ(e->user, std::string("J\xFC"
                                 "rgen\0x",
                                 8));  // bytes kept
  EXPECT_EQ(e->time, kNow);
}

TEST(ConversionsTest, EmptyIpIsNonActionableNotAnError) {
  absl::StatusOr<AuthEvent> e = ToDomain(Event(""), "mail1", kNow);
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE(e->ip.has_value());
}

TEST(ConversionsTest, HostileFieldsAreRejectedWithTheFieldName) {
  struct Case {
    std::function<void(v1::AuthEvent*)> mutate;
    std::string want;
  };
  const Case cases[] = {
      {[](v1::AuthEvent* e) { e->set_kind(v1::EVENT_KIND_UNSPECIFIED); },
       "kind:"},
      {[](v1::AuthEvent* e) { e->set_kind(static_cast<v1::EventKind>(99)); },
       "kind:"},
      {[](v1::AuthEvent* e) { e->set_protocol(static_cast<v1::Protocol>(42)); },
       "protocol:"},
      {[](v1::AuthEvent* e) { e->set_ip("xxx.xxx.xxx.xxx"); }, "ip:"},
      {[](v1::AuthEvent* e) { e->set_ip(std::string(5000, '1')); }, "ip:"},
      {[](v1::AuthEvent* e) { e->set_user(std::string(257, 'u')); }, "user:"},
      {[](v1::AuthEvent* e) {
         e->clear_time();
         e->clear_observed_at();
       },
       "time: missing"},
      {[](v1::AuthEvent* e) { e->mutable_time()->set_nanos(-1); }, "time:"},
      {[](v1::AuthEvent* e) {
         e->mutable_time()->set_seconds(absl::ToUnixSeconds(kNow) - 86400 * 31);
       },
       "older than"},
      {[](v1::AuthEvent* e) {
         e->mutable_time()->set_seconds(absl::ToUnixSeconds(kNow) + 86400 * 2);
       },
       "in the future"},
  };
  for (const Case& c : cases) {
    v1::AuthEvent e = Event();
    c.mutate(&e);
    absl::StatusOr<AuthEvent> got = ToDomain(e, "mail1", kNow);
    ASSERT_FALSE(got.ok()) << c.want;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(got.status().message()), HasSubstr(c.want));
  }
  EXPECT_FALSE(ToDomain(Event(), "", kNow).ok());
  EXPECT_FALSE(ToDomain(Event(), std::string(129, 'a'), kNow).ok());
}

TEST(ConversionsTest, BatchKeepsGoodEventsAndReportsBadOnes) {
  v1::EventBatch b;
  b.set_sequence(7);
  *b.add_events() = Event();
  *b.add_events() = Event("not-an-ip");
  *b.add_events() = Event("2001:db8::1");
  absl::StatusOr<ConvertedBatch> c = ToDomain(b, "mail1", 42, kNow);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->id,
            (BatchId{.agent_id = "mail1", .spool_epoch = 42, .sequence = 7}));
  EXPECT_THAT(c->events, SizeIs(2));
  ASSERT_THAT(c->rejected, SizeIs(1));
  EXPECT_EQ(c->rejected[0].first, 1);
}

TEST(ConversionsTest, OversizedEmptyOrUnnumberedBatchIsRejectedWhole) {
  v1::EventBatch b;
  b.set_sequence(0);
  absl::StatusOr<ConvertedBatch> c = ToDomain(b, "mail1", 1, kNow);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  b.set_sequence(1);
  c = ToDomain(b, "mail1", 1, kNow);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("no events"));
  for (int i = 0; i <= v1::kMaxEventsPerBatch; ++i) {
    *b.add_events() = Event();
  }
  c = ToDomain(b, "mail1", 1, kNow);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("at most 5000"));
}

TEST(ConversionsTest, ObservedAtStandsInForAMissingOrImplausibleTime) {
  v1::AuthEvent e = Event("198.51.100.7");
  e.mutable_observed_at()->set_seconds(absl::ToUnixSeconds(kNow) - 60);
  e.clear_time();
  absl::StatusOr<AuthEvent> d = ToDomain(e, "mail1", kNow);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->time, kNow - absl::Seconds(60));
  // The log says 2 hours after the observation: a wrong zone on the host.
  e.mutable_time()->set_seconds(absl::ToUnixSeconds(kNow) + 7200 - 60);
  d = ToDomain(e, "mail1", kNow);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->time, kNow - absl::Seconds(60));
  // Within 5 minutes the log's own time wins.
  e.mutable_time()->set_seconds(absl::ToUnixSeconds(kNow) - 30);
  d = ToDomain(e, "mail1", kNow);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->time, kNow - absl::Seconds(30));
}

TEST(ConversionsTest, HostBansCarryTheirLengthOnTheWire) {
  Ban ban{.id = 1,
          .prefix = *IpPrefix::FromString("198.51.100.7"),
          .created = kNow,
          .expires = kNow + absl::Hours(1)};
  EXPECT_EQ(ToProto(ban, 1).prefix(), "198.51.100.7/32");
  ban.prefix = *IpPrefix::FromString("2001:db8::1");
  EXPECT_EQ(ToProto(ban, 1).prefix(), "2001:db8::1/128");
}

TEST(ConversionsTest, BansAndDeltas) {
  Ban ban{.id = 9,
          .prefix = *IpPrefix::FromString("203.0.113.0/24"),
          .created = kNow,
          .expires = absl::InfiniteFuture(),
          .origin = BanOrigin::kPrefix,
          .level = 2,
          .reason = std::string(300, 'r')};
  v1::BanEntry e = ToProto(ban, 17);
  EXPECT_EQ(e.prefix(), "203.0.113.0/24");
  EXPECT_FALSE(e.has_expires_at());  // permanent
  EXPECT_EQ(e.origin(), v1::BAN_ORIGIN_PREFIX);
  EXPECT_EQ(e.escalation_level(), 2u);
  EXPECT_EQ(e.revision(), 17u);
  EXPECT_LE(e.reason().size(), static_cast<size_t>(v1::kMaxReasonBytes));

  std::vector<JournalEntry> entries;
  for (uint64_t r = 11; r <= 11 + 4500; ++r) {
    entries.push_back(JournalEntry{
        .revision = r,
        .op = r % 2 ? JournalEntry::Op::kAdd : JournalEntry::Op::kRemove,
        .ban = ban});
  }
  std::vector<v1::BanListDelta> deltas = ToDeltas(entries, 5);
  ASSERT_THAT(deltas, SizeIs(3));
  EXPECT_EQ(deltas[0].from_revision(), 10u);
  EXPECT_EQ(deltas[0].to_revision(), 2010u);
  EXPECT_EQ(deltas[1].from_revision(), 2010u);
  EXPECT_EQ(deltas[2].to_revision(), 4511u);
  EXPECT_EQ(deltas[0].changes(0).op(), v1::BAN_CHANGE_OP_ADD);
  EXPECT_EQ(deltas[0].changes(1).op(), v1::BAN_CHANGE_OP_REMOVE);
  EXPECT_EQ(deltas[2].ban_list_epoch(), 5u);
  for (const auto& d : deltas) {
    EXPECT_LE(d.ByteSizeLong(), static_cast<size_t>(v1::kMaxMessageBytes));
  }
}

TEST(ConversionsTest, StatusMapping) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  grpc::Status s = ToGrpcStatus(absl::ResourceExhaustedError("too big"));
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(), "too big");
  EXPECT_EQ(ToGrpcStatus(absl::UnavailableError("db")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace rampart::server
