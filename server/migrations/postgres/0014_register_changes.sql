-- Single decisions are no longer indexed by the value asked: each question's insert into that
-- index was a random write into a large tree. An auditor's search by value reads the
-- decisions of the time range asked, found by their call ids (which begin with the time).
-- (SQLite's migration of the same number also adds the register's change log, which only a
-- hub holding the register in memory reads; PostgreSQL hubs read the register each time.)
DROP INDEX eligibility_decisions_query;
