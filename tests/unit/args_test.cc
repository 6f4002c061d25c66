#include "common/args.h"

#include <gtest/gtest.h>

namespace jobd {
namespace {

std::string Pack(const std::vector<std::string_view>& args) {
  std::string packed(PackedSize(args), '\0');
  PackArgs(args, packed.data());
  return packed;
}

TEST(ArgsTest, RoundTrips) {
  for (const std::vector<std::string_view>& args : std::vector<std::vector<std::string_view>>{
           {}, {""}, {"a"}, {"one", "", std::string_view("three\0x", 7)}}) {
    const std::string packed = Pack(args);
    Result<std::vector<std::string_view>> unpacked = UnpackArgs(packed);
    ASSERT_TRUE(unpacked.ok()) << unpacked.message();
    EXPECT_EQ(*unpacked, args);
  }
}

TEST(ArgsTest, EveryMalformedTupleIsRefused) {
  const std::string good = Pack({"ab", "c"});
  EXPECT_NE(UnpackArgs("").message().find("no count"), std::string::npos);
  for (size_t cut = 1; cut < good.size(); ++cut) {
    EXPECT_FALSE(UnpackArgs(good.substr(0, cut)).ok()) << "cut at " << cut;
  }
  EXPECT_NE(UnpackArgs(good + "x").message().find("trailing bytes"), std::string::npos);
  std::string huge_count = good;
  huge_count[3] = '\x7f';  // 2^30 arguments in 17 bytes
  EXPECT_NE(UnpackArgs(huge_count).message().find("bad count"), std::string::npos);
  std::string huge_length = good;
  huge_length[7] = '\x7f';  // the first argument claims 2 GiB
  EXPECT_NE(UnpackArgs(huge_length).message().find("truncated"), std::string::npos);
}

}  // namespace
}  // namespace jobd
