package features

// fullSpec is DefaultSpec with every block on (char n-grams 3..5) and a
// 32 KiB window, so the tests exercise each code path whatever the
// defaults are.
func fullSpec() Spec {
	s := DefaultSpec()
	s.CharNgrams = [2]int{3, 5}
	s.MaxBytes = 32 << 10
	return s
}
