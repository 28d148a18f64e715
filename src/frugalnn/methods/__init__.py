"""One folder per paper. Each imports core/ and hw/, never another method."""
