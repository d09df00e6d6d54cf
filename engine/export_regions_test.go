package engine

// InstallRegionsForTest runs the installer over the requests waiting now.
func (e *Engine) InstallRegionsForTest() {
	if e.rg != nil {
		e.rg.installPending()
	}
}

// MaintainRegionsForTest runs one maintenance pass of the installer
// (counters, expiry).
func (e *Engine) MaintainRegionsForTest() {
	if e.rg != nil {
		e.rg.maintain(true)
	}
}

// RepairRegionsForTest runs one check of the region table.
func (e *Engine) RepairRegionsForTest() {
	if e.rg != nil {
		e.rg.repair()
	}
}

// StopRegionsForTest ends the installer as the end of Run would.
func (e *Engine) StopRegionsForTest() {
	if e.rg != nil {
		e.rg.stop()
	}
}

var ElemHasKey = elemHasKey
