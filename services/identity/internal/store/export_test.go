package store

// The search's branches, for the tests of their plans.
var (
	SearchBranches = searchBranches
	ExactBranches  = exactBranches
)
