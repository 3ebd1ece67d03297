-- Enrolments by household, with what says whether they run on a day: the statistics count the
-- lines running per household without reading the enrolments themselves.
CREATE INDEX enrollments_household_running ON enrollments (household_code, operator, start_date, end_date);
DROP INDEX enrollments_household;
