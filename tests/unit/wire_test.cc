#include "common/wire.h"

#include <gtest/gtest.h>

#include "common/payload.h"

namespace jobd {
namespace {

std::string Bytes(const google::protobuf::MessageLite& message) {
  return message.SerializeAsString();
}

wire::Request Submit(const std::string& function) {
  wire::Request request;
  request.set_version(wire::VERSION_CURRENT);
  request.mutable_submit()->set_function(function);
  return request;
}

TEST(WireTest, ValidRequestDecodes) {
  wire::Request out;
  Status s = DecodeRequest(Bytes(Submit("sha256")), &out);
  ASSERT_TRUE(s.ok()) << s.message();
  EXPECT_EQ(out.submit().function(), "sha256");
}

TEST(WireTest, GarbageTruncatedAndEmptyAreRefusedWithReasons) {
  wire::Request out;
  EXPECT_NE(DecodeRequest("\xff\xff\xff\xff garbage", &out).message().find("malformed request"),
            std::string::npos);
  const std::string whole = Bytes(Submit("sha256"));
  EXPECT_FALSE(DecodeRequest(whole.substr(0, whole.size() - 2), &out).ok());
  EXPECT_NE(DecodeRequest("", &out).message().find("protocol version 0"), std::string::npos);
  wire::Request empty;
  empty.set_version(wire::VERSION_CURRENT);
  EXPECT_NE(DecodeRequest(Bytes(empty), &out).message().find("no known operation"),
            std::string::npos);
}

TEST(WireTest, OtherVersionsAreNamed) {
  wire::Request request = Submit("sha256");
  request.set_version(static_cast<wire::Version>(7));
  wire::Request out;
  const std::string error = DecodeRequest(Bytes(request), &out).message();
  EXPECT_NE(error.find("version 7"), std::string::npos) << error;
  EXPECT_NE(error.find("speaks version 1"), std::string::npos) << error;
}

TEST(WireTest, NamesAreChecked) {
  EXPECT_TRUE(IsValidName("sha256"));
  EXPECT_TRUE(IsValidName("my-pool_2.x"));
  EXPECT_FALSE(IsValidName(""));
  EXPECT_FALSE(IsValidName("a b"));
  EXPECT_FALSE(IsValidName(std::string(65, 'a')));
  wire::Request out;
  EXPECT_NE(DecodeRequest(Bytes(Submit("rm -rf")), &out).message().find("invalid function name"),
            std::string::npos);
  wire::Request bad_pool = Submit("sha256");
  bad_pool.mutable_submit()->set_pool("x/y");
  EXPECT_FALSE(DecodeRequest(Bytes(bad_pool), &out).ok());
  wire::Request big_chunk = Submit("sha256");
  big_chunk.mutable_submit()->set_chunksize(1 << 20);
  EXPECT_FALSE(DecodeRequest(Bytes(big_chunk), &out).ok());
}

TEST(WireTest, SegmentReferencesAreChecked) {
  wire::Request request;
  request.set_version(wire::VERSION_CURRENT);
  wire::SegmentRef* ref = request.mutable_items()->add_items()->mutable_ref();
  ref->set_segment("/etc/passwd");
  wire::Request out;
  EXPECT_NE(DecodeRequest(Bytes(request), &out).message().find("not a jobd segment"),
            std::string::npos);
  ref->set_segment(NewSegmentName());
  ref->set_offset(UINT64_MAX);
  ref->set_length(2);
  EXPECT_NE(DecodeRequest(Bytes(request), &out).message().find("overflows"), std::string::npos);
  ref->set_offset(0);
  EXPECT_TRUE(DecodeRequest(Bytes(request), &out).ok());
  request.mutable_items()->add_segments("not-ours");
  EXPECT_FALSE(DecodeRequest(Bytes(request), &out).ok());
}

TEST(WireTest, WorkerMessagesAreChecked) {
  wire::FromWorker from;
  from.set_version(wire::VERSION_CURRENT);
  from.mutable_results()->add_results()->add_outcomes();  // neither value nor error
  wire::FromWorker decoded;
  EXPECT_NE(DecodeFromWorker(Bytes(from), &decoded).message().find("neither value nor error"),
            std::string::npos);
  wire::ToWorker to;
  to.set_version(wire::VERSION_CURRENT);
  to.mutable_tasks()->add_tasks()->set_output_segment("evil");
  wire::ToWorker to_decoded;
  EXPECT_FALSE(DecodeToWorker(Bytes(to), &to_decoded).ok());
  to.mutable_tasks()->mutable_tasks(0)->set_output_segment(NewSegmentName());
  EXPECT_TRUE(DecodeToWorker(Bytes(to), &to_decoded).ok());
}

}  // namespace
}  // namespace jobd
