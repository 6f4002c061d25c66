#include "worker/functions.h"

#include <gtest/gtest.h>

namespace jobd {
namespace {

class FunctionsTest : public ::testing::Test {
 protected:
  Result<std::string> Call(const std::string& name, std::string_view item) {
    const Function* function = registry_.Find(name);
    EXPECT_NE(function, nullptr) << name;
    return function->body(item);
  }
  std::string Value(const std::string& name, std::string_view item) {
    Result<std::string> result = Call(name, item);
    EXPECT_TRUE(result.ok()) << result.message();
    return result.ok() ? result.value() : "";
  }
  FunctionRegistry registry_ = BuiltinFunctions();
};

TEST_F(FunctionsTest, ListsEveryBuiltinSorted) {
  std::vector<std::string> names;
  for (const Function* f : registry_.List()) names.push_back(f->name);
  EXPECT_EQ(names, (std::vector<std::string>{"crash", "fail", "identity", "len", "primes",
                                             "sha256", "sleep"}));
  EXPECT_EQ(registry_.Find("nope"), nullptr);
}

TEST_F(FunctionsTest, Sha256MatchesKnownDigests) {
  EXPECT_EQ(Value("sha256", ""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Value("sha256", "hello"),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
}

TEST_F(FunctionsTest, PrimesCountsPrimesUpToN) {
  EXPECT_EQ(Value("primes", "0"), "0");
  EXPECT_EQ(Value("primes", "1"), "0");
  EXPECT_EQ(Value("primes", "2"), "1");
  EXPECT_EQ(Value("primes", "3"), "2");
  EXPECT_EQ(Value("primes", "100"), "25");
  EXPECT_EQ(Value("primes", "1000000"), "78498");
}

TEST_F(FunctionsTest, NumbersAreCheckedStrictly) {
  for (const char* bad : {"", "abc", "12x", "-1", " 5", "5 "}) {
    Result<std::string> result = Call("primes", bad);
    ASSERT_FALSE(result.ok()) << "'" << bad << "'";
    EXPECT_NE(result.message().find("primes: expected a whole number"), std::string::npos);
  }
  Result<std::string> huge = Call("primes", "1000000001");
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.message().find("larger than the limit"), std::string::npos);
  EXPECT_FALSE(Call("sleep", "soon").ok());
}

TEST_F(FunctionsTest, SmallFunctions) {
  EXPECT_EQ(Value("identity", std::string("a\0b", 3)), std::string("a\0b", 3));
  EXPECT_EQ(Value("len", "hello"), "5");
  EXPECT_EQ(Value("sleep", "1"), "1");
  EXPECT_EQ(Value("crash", "ok, not crashing"), "ok, not crashing");
  Result<std::string> failed = Call("fail", "x");
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("always fails"), std::string::npos);
}

}  // namespace
}  // namespace jobd
