#include "cli/words.h"

namespace jobd {

Result<std::vector<std::string>> SplitWords(std::string_view line) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\\') {
      if (++i == line.size()) return Status::Error("the command ends with a lone backslash");
      word += line[i];
    } else if (c == '\'') {
      const size_t end = line.find('\'', i + 1);
      if (end == std::string_view::npos) {
        return Status::Error("the command has an unclosed ' (at character " + std::to_string(i + 1) + ")");
      }
      word.append(line.substr(i + 1, end - i - 1));
      i = end;
    } else if (c == '"') {
      const size_t start = i;
      for (++i; i < line.size() && line[i] != '"'; ++i) {
        const bool escape = line[i] == '\\' && i + 1 < line.size() &&
                            std::string_view("\"\\$`").find(line[i + 1]) != std::string_view::npos;
        if (escape) ++i;
        word += line[i];
      }
      if (i == line.size()) {
        return Status::Error("the command has an unclosed \" (at character " + std::to_string(start + 1) + ")");
      }
    } else {
      word += c;
    }
  }
  if (in_word) words.push_back(std::move(word));
  if (words.empty()) return Status::Error("the command is empty");
  return words;
}

}  // namespace jobd
