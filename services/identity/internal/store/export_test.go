package store

// SearchFilter exposes searchFilter to the tests of its plans.
var SearchFilter = searchFilter
