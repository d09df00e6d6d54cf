package policy

// SetMaxRectsPerRule changes the expansion cap (tests force the slow
// matcher with it) and returns a function restoring the old value.
func SetMaxRectsPerRule(n int) func() {
	old := maxRectsPerRule
	maxRectsPerRule = n
	return func() { maxRectsPerRule = old }
}
