// jobctl starmap: several arguments per item, through every kind of function.
#include "daemon_fixture.h"

namespace jobd::testing {
namespace {

using StarmapTest = DaemonTest;

TEST_F(StarmapTest, ZippedFilesAndConstantsReachCommandsAsSeparateArguments) {
  WriteFile(dir_ + "/a", "one\ntwo words\n$(x)\n");
  WriteFile(dir_ + "/b", "1\n2\n3\n");
  Command run = Jobctl({"starmap", "--exec", "printf [%s] {1} {2} {3}", "--const", "K", "--zip",
                        dir_ + "/a", dir_ + "/b"});
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_EQ(run.out, "[K][one][1]\n[K][two words][2]\n[K][$(x)][3]\n");
}

// A CRLF ending (Windows, spreadsheets) ends the line: the CR is not part of
// the last argument, in --zip files and in TSV alike.
TEST_F(StarmapTest, ACarriageReturnBeforeTheNewlineIsPartOfTheLineEnding) {
  WriteFile(dir_ + "/a", "one\r\ntwo\r\n");
  WriteFile(dir_ + "/b", "1\r\n2\n");
  Command zipped = Jobctl({"starmap", "--exec", "printf [%s] {1} {2}", "--zip", dir_ + "/a",
                           dir_ + "/b"});
  ASSERT_EQ(zipped.status, 0) << zipped.err;
  EXPECT_EQ(zipped.out, "[one][1]\n[two][2]\n");
  Command tsv = Jobctl({"starmap", "--exec", "printf [%s] {1} {2}"}, "a\tb\r\nc\td\n");
  ASSERT_EQ(tsv.status, 0) << tsv.err;
  EXPECT_EQ(tsv.out, "[a][b]\n[c][d]\n");
  // Inside a line, a CR is data.
  Command inner = Jobctl({"starmap", "--exec", "printf [%s] {1} {2}"}, "a\rx\tb\n");
  EXPECT_EQ(inner.out, "[a\rx][b]\n");
}

TEST_F(StarmapTest, TsvColumnsReachPluginsAndStreams) {
  // The example plugin's `words` counts words of its first argument only.
  Command plugin = Jobctl({"starmap", "--plugin", std::string(JOBD_LIB_DIR) + "/libjobd_text.so",
                           "words"},
                          "a b\tx\nc\ty\n");
  ASSERT_EQ(plugin.status, 0) << plugin.err;
  EXPECT_EQ(plugin.out, "2\n1\n");
  const std::string script = dir_ + "/join.py";
  WriteFile(script, "import sys\nsys.path.insert(0, '" + std::string(JOBD_SOURCE_DIR) +
                        "/worker/stream')\nimport jobd_stream\n"
                        "jobd_stream.serve(lambda *args: '|'.join(args))\n");
  for (const char* mode : {"--no-progress", "--framed"}) {
    Command stream = Jobctl({"starmap", mode, "--const", "c", "--stream", "python3 " + script},
                            "a\tb\nd\te\n");
    ASSERT_EQ(stream.status, 0) << mode << ": " << stream.err;
    EXPECT_EQ(stream.out, "c|a|b\nc|d|e\n") << mode;
  }
}

TEST_F(StarmapTest, ArgumentCountsThatDoNotMatchNameTheLine) {
  Command tsv = Jobctl({"starmap", "--exec", "echo {1}"}, "a\tb\nc\td\ne\n");
  EXPECT_EQ(tsv.status, 4);
  EXPECT_NE(tsv.err.find("line 3 has 1 columns, but line 1 has 2"), std::string::npos) << tsv.err;
  WriteFile(dir_ + "/long", "1\n2\n3\n");
  WriteFile(dir_ + "/short", "1\n");
  Command zip = Jobctl({"starmap", "--exec", "echo {1}", "--zip", dir_ + "/long", dir_ + "/short"});
  EXPECT_EQ(zip.status, 4);
  EXPECT_NE(zip.err.find("the files have different numbers of lines (some end before line 2)"),
            std::string::npos) << zip.err;
  Command builtin = Jobctl({"starmap", "len"}, "a\tb\n");
  EXPECT_EQ(builtin.status, 1);
  EXPECT_NE(builtin.err.find("len takes one argument; the item has 2"), std::string::npos);
  Command items = Jobctl({"starmap", "len", "x"});
  EXPECT_EQ(items.status, 2);
  EXPECT_NE(items.err.find("starmap reads its items from --zip FILEs or TSV on stdin"),
            std::string::npos);
}

}  // namespace
}  // namespace jobd::testing
