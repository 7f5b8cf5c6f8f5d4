package reports

// SetMaxSheetRows makes a workbook's sheets hold n rows, header included,
// until the returned func puts the bound back.
func SetMaxSheetRows(n int) (restore func()) {
	old := maxSheetRows
	maxSheetRows = n
	return func() { maxSheetRows = old }
}
