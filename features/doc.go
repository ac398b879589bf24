// Package features turns a request (a prompt or chat messages, plus meta
// such as subject or tenant) into the sparse vector the router's classifier
// reads. It runs on the serving path, so Extract is built to take a few
// microseconds on a 2 KB prompt and to allocate nothing once warm; and it
// runs at training time on the same recipe, so the Spec that describes it
// is data saved inside the model artifact.
//
// # The vector
//
// Dim = 1<<HashBits hashed slots, then NumNumeric numeric slots when
// Spec.Numeric is set, then 1<<MetaBits meta slots when Spec.Meta and
// Spec.MetaBits are set (version 2; in version 1 meta shares the hashed
// slots). Blocks, in output order:
//
//   - word n-grams (Spec.WordNgrams): tokens are runs of ASCII letters and
//     digits and of bytes >= 0x80, lowercased, and with Spec.SplitCJK
//     (version 2) every Chinese, Japanese or Korean character is a token
//     of its own, since those scripts put no spaces between words; all
//     unigrams, then all bigrams, and so on;
//   - char n-grams (Spec.CharNgrams, up to 8 bytes): every byte n-gram of
//     the normalised text, spaces and punctuation included;
//   - numeric: log length in bytes and in tokens, line count, digit and
//     non-ASCII shares, code markers (``` fences, braces, "==", "->",
//     "::", "&&", a ';' ending a line, words like def/elif/lambda/printf),
//     math markers ('=', '+', '^', '$', an operator touching a digit, LaTeX
//     commands), question marks and turns, each scaled to roughly [0, 1] by
//     constants in text.go; zeros are left out;
//   - meta: one indicator "meta:key=value" per key (Spec.MetaKeys, or every
//     key when it is empty), in sorted key order, in its own block when
//     Spec.MetaBits is set, so a trainer can penalise meta apart from text.
//
// There is no bias feature: the classifier has its own intercept.
//
// The text is Prompt when non-empty, else the messages' contents joined by
// "\n" (as datasets.Record.Text does), so a prompt and the one-message chat
// holding it give the same vector. Normalisation lowercases ASCII, turns
// tabs and other spaces into ' ', collapses runs of spaces and runs of
// newlines, and trims both ends. Only the first Spec.MaxBytes bytes feed
// the n-gram blocks and the numeric counts; the length features see the
// full length (the token count is extrapolated from the prefix), so a 10 MB
// prompt costs what a MaxBytes one does.
//
// With Spec.Normalize "l2" every occurrence in a text block weighs
// 1/sqrt(number of n-grams in the block): a block of distinct n-grams has
// L2 norm 1, and repeats weigh more, like tf-idf's L2 normalisation without
// the idf and without sublinear tf. This needs neither sorting nor merging,
// so indices may repeat in a Vector (a repeated n-gram, or a hash
// collision) and consumers must sum them. "none" weighs every occurrence 1.
//
// # Hashing and determinism
//
// The hashes are written out in hash.go and extract.go (splitmix64 and
// Murmur3 constants for tokens and meta; for char grams, multiply-shift on
// bytes passed through a random permutation), seeded by Spec.Seed and a
// per-block tag, so the same string as a word, a char gram or a meta value
// lands on unrelated slots. There is no per-process randomness (no
// hash/maphash) and no map-order dependence: the same input and Spec give
// a byte-identical vector on every run and machine. Changing any rule
// above changes the vectors saved models were trained on and must bump
// SpecVersion; the golden test in testdata/golden catches accidental
// changes.
//
// # Caveats
//
//   - An Extractor is not safe for concurrent use; give each goroutine its
//     own (a sync.Pool of them suits a server). Each keeps scratch buffers
//     of about 10 bytes per byte of the largest text prefix it has seen,
//     and a reused Vector holds up to about 50 bytes per prefix byte with
//     the default spec: some 1.6 MB for a 32 KiB prefix.
//   - Case folding is ASCII-only; other scripts are compared byte for byte,
//     and invalid UTF-8 is simply bytes.
//   - Turn.Role is not a feature (versions 1 and 2); only the number of
//     turns is.
//   - Meta is capped: with MetaKeys empty only the 64 smallest keys count,
//     and only the first 256 bytes of a key and of a value are hashed.
//     Meta features help only if serving traffic carries the same keys as
//     the training logs; list MetaKeys to be explicit.
//   - Hashing into 1<<HashBits slots collides: with HashBits 18, a prompt's
//     few thousand n-grams share slots with other n-grams of the vocabulary;
//     the classifier learns the mix.
package features
