-- The day the People's Committee approved a device list: the date of its approving decision,
-- which may be before the day the approval is recorded in the hub. Hand-overs are dated from
-- it, and statistics count the list's places from it. Lists approved before this column
-- existed take the day (Vietnam's, UTC+7) their approval was recorded.
ALTER TABLE device_allocations ADD COLUMN approved_on TEXT;
UPDATE device_allocations SET approved_on = date(decided_at, '+7 hours') WHERE status = 'APPROVED';
