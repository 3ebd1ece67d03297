//! Realistic synthetic households, for the demo, tests and benchmarks
//! (`telesub gen households --count N --seed S`).
//!
//! [`HouseholdGenerator`] is an endless iterator of household records (upserts) spread over
//! a list of communes: Đắk Nông's 71 with [`HouseholdGenerator::reference`]. The output
//! depends only on the seed and the communes, on any machine: the generator has its own
//! PRNG (SplitMix64) and uses integer arithmetic only.
//!
//! - Position `i` of the iterator is household `i`: its code is `HH-<commune>-<i, 7 digits>`
//!   (e.g. `HH-24611-0000042`). Everything about it — commune, category, flags, members,
//!   their sex, birth years, names, address, certificate — is a pure function of
//!   `(seed, communes, i)`, except the last 6 digits of the citizen IDs (see below).
//!   Counting what the generator planted (categories, flags, members) only needs
//!   regenerating.
//! - `take(n)` of a generator is a prefix of `take(m)` for `n < m`, so `skip(n)` yields
//!   households whose codes and citizen IDs are not among the first `n` (the benchmark's
//!   "new households"); [`Iterator::nth`] and `skip` are cheap (no strings are built).
//! - Citizen IDs are unique over everything one generator yields, by construction: the
//!   first 6 digits (province of birth, sex and century, year of birth) are the member's
//!   *cell*, and the last 6 are a keyed bijection (a Feistel network on 0..10⁶) of the number
//!   of people the generator has already put in that cell. A cell holds 10⁶ people; the
//!   fullest cell (067, women born in 1989) gets about 23,000 per million households, so
//!   none fills up before about 40 million households; past that, a person whose cell is
//!   full is recorded as born in the next province of the list instead. The serial digits
//!   thus depend on the order of generation, which the iterator fixes.
//!
//! The mix follows a poor province of the Central Highlands: 48% POOR, 40% NEAR_POOR, 6%
//! SOCIAL_POLICY, 3% MERITORIOUS_SERVICE, 3% OTHER; households of 1 to 7 members (mean
//! about 3.6) with one head (the first member), a spouse in most households of two or
//! more, children, sometimes a parent of the head or grandchildren; Kinh households (and
//! Tày, Nùng, Dao families who came from the northern mountains) with Vietnamese family
//! names (Nguyễn for about 38% of Kinh households) and Ê Đê, M'Nông and K'Ho / Mạ households with their own
//! naming (`Y Bih Niê`, `H'Hen Êban`, `Điểu Kré`, `Thị Hoa`, `K'Brơi`, `Ka Huyền`); Ê Đê
//! children take their mother's clan name, Kinh children their father's family name.
//! Names are in Unicode NFC.

use std::iter::FusedIterator;

use telesub_proto::v1::{self as proto, household_record};

use telesub_server::domain::units::{UnitLevel, reference_units};

/// The generator's idea of the current year: nobody is born after it.
pub const CURRENT_YEAR: i32 = 2026;

/// Most members in one generated household.
pub const MAX_MEMBERS: usize = 7;

/// People in one cell (province of birth, sex, year of birth) before its serials run out.
const CELL_CAPACITY: u32 = 1_000_000;

/// An endless, deterministic stream of synthetic households; see the module documentation.
#[derive(Debug, Clone)]
pub struct HouseholdGenerator {
    seed: u64,
    /// Derived from the seed: keys every household's random streams.
    key: u64,
    communes: Vec<String>,
    /// The index of the next household.
    next: u64,
    /// People already placed in each cell: `PROVINCES.len() × 2 sexes × YEARS` counters.
    cells: Vec<u32>,
}

impl HouseholdGenerator {
    /// Households spread evenly over `communes` (5-digit commune codes).
    ///
    /// # Panics
    /// When `communes` is empty.
    pub fn new(seed: u64, communes: Vec<String>) -> Self {
        assert!(!communes.is_empty(), "the household generator needs at least one commune");
        Self {
            seed,
            key: mix(seed ^ 0x7465_6c65_7375_6221),
            communes,
            next: 0,
            cells: vec![0; PROVINCES.len() * 2 * YEARS],
        }
    }

    /// Households in Đắk Nông's 71 communes (the hub's reference units).
    pub fn reference(seed: u64) -> Self {
        let communes = reference_units()
            .expect("the reference units ship with the hub")
            .into_iter()
            .filter(|u| u.level == UnitLevel::Commune)
            .map(|u| u.code.as_str().to_owned())
            .collect();
        Self::new(seed, communes)
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn communes(&self) -> &[String] {
        &self.communes
    }

    /// The index (and code number) of the household the next call to `next` yields.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// The household at the current position, then moves on.
    fn generate(&mut self) -> proto::HouseholdRecord {
        let index = self.next;
        self.next += 1;
        let plan = Plan::new(self.key, index, self.communes.len());
        let mut ids = [(0usize, 0u32); MAX_MEMBERS];
        for (id, person) in ids.iter_mut().zip(plan.people()) {
            *id = self.place(person);
        }
        self.render(index, &plan, &ids)
    }

    /// Places a person in their cell (moving them to the next province when it is full)
    /// and returns the province index and the serial.
    fn place(&mut self, person: &Person) -> (usize, u32) {
        let year = (person.year - FIRST_YEAR) as usize;
        let sex = usize::from(person.female);
        for step in 0..PROVINCES.len() {
            let province = (person.province + step) % PROVINCES.len();
            let cell = (province * 2 + sex) * YEARS + year;
            let count = self.cells[cell];
            if count < CELL_CAPACITY {
                self.cells[cell] = count + 1;
                return (province, feistel(mix(self.key ^ (cell as u64 + 1).wrapping_mul(GOLDEN)), count));
            }
        }
        panic!("the household generator ran out of citizen ID numbers for people born in {}", person.year)
    }

    fn render(&self, index: u64, plan: &Plan, ids: &[(usize, u32)]) -> proto::HouseholdRecord {
        let mut rng = Rng::household(self.key, index, TEXT_STREAM);
        let commune = &self.communes[plan.commune];
        let people = plan.people();

        let names = Names::draw(&mut rng, plan);
        let mut members = Vec::with_capacity(people.len());
        for (person, &(province, serial)) in people.iter().zip(ids) {
            members.push(proto::HouseholdMember {
                citizen_id: citizen_id(province, person, serial),
                full_name: names.full_name(&mut rng, plan.ethnicity, person),
                relationship: person.relationship as i32,
                birth_year: person.year,
            });
        }
        let address = address(&mut rng, plan.ethnicity);
        let certificate = rng.chance(930).then(|| {
            let year = rng.range(2022, 2025);
            let month = rng.range(1, 12);
            let day = rng.range(1, days_in_month(year, month));
            proto::Certificate {
                number: {
                    let mut number = String::with_capacity(20);
                    push_number(&mut number, index + 1, 1);
                    number.push_str("/GCN-HN.HCN");
                    number
                },
                issued_on: {
                    let mut date = String::with_capacity(10);
                    push_number(&mut date, year as u64, 4);
                    date.push('-');
                    push_number(&mut date, month as u64, 2);
                    date.push('-');
                    push_number(&mut date, day as u64, 2);
                    date
                },
                issuing_unit_code: commune.clone(),
            }
        });
        proto::HouseholdRecord {
            household_code: {
                let mut code = String::with_capacity(12 + commune.len());
                code.push_str("HH-");
                code.push_str(commune);
                code.push('-');
                push_number(&mut code, index, 7);
                code
            },
            effective_date: String::new(),
            change: Some(household_record::Change::Upsert(proto::HouseholdData {
                category: plan.category as i32,
                head_name: members[0].full_name.clone(),
                commune_code: commune.clone(),
                address,
                certificate,
                flags: Some(plan.flags),
                members,
            })),
        }
    }
}

impl Iterator for HouseholdGenerator {
    type Item = proto::HouseholdRecord;

    fn next(&mut self) -> Option<proto::HouseholdRecord> {
        Some(self.generate())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::MAX, None)
    }

    /// Skips `n` households without building their strings (their citizen IDs are still
    /// reserved, so what follows is what `next` would have yielded).
    fn nth(&mut self, n: usize) -> Option<proto::HouseholdRecord> {
        for _ in 0..n {
            let plan = Plan::new(self.key, self.next, self.communes.len());
            for person in plan.people() {
                self.place(person);
            }
            self.next += 1;
        }
        self.next()
    }
}

impl FusedIterator for HouseholdGenerator {}

// ---------------------------------------------------------------------------------------
// The random source

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
/// Stream of a household's facts (cheap: what `nth` computes).
const PLAN_STREAM: u64 = 1;
/// Stream of a household's texts (names, address, certificate).
const TEXT_STREAM: u64 = 2;

/// SplitMix64's output function: a bijective 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64 (Steele, Lea, Flood 2014).
struct Rng(u64);

impl Rng {
    /// The stream `stream` of household `index`: a pure function of the three.
    fn household(key: u64, index: u64, stream: u64) -> Self {
        Rng(mix(key ^ mix(index.wrapping_mul(4).wrapping_add(stream))))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2⁻³²).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        debug_assert!(lo <= hi);
        lo + self.below((hi - lo + 1) as u64) as i32
    }

    /// True with probability `per_mille` / 1000.
    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        let total: u32 = items.iter().map(|&(_, w)| w).sum();
        let mut x = self.below(u64::from(total)) as u32;
        for &(item, weight) in items {
            if x < weight {
                return item;
            }
            x -= weight;
        }
        unreachable!("x < total")
    }
}

/// A bijection of `0..1_000_000` keyed by `key`: four Feistel rounds on two halves of
/// `0..1000`, so that consecutive counters give unrelated-looking serials.
fn feistel(key: u64, n: u32) -> u32 {
    debug_assert!(n < CELL_CAPACITY);
    let (mut left, mut right) = (n / 1000, n % 1000);
    for round in 0..4u64 {
        // The top bits of a multiplication: cheap, and enough to scatter 10 bits.
        let f = (((key ^ (u64::from(right) << 2 | round)).wrapping_mul(GOLDEN) >> 44) % 1000) as u32;
        (left, right) = (right, (left + f) % 1000);
    }
    left * 1000 + right
}

// ---------------------------------------------------------------------------------------
// A household's facts

/// Provinces of birth that appear, by their 2-digit codes (a citizen ID opens with `0` and
/// one). Đắk Nông first: index 0.
const PROVINCES: [&str; 14] = ["67", "66", "40", "38", "42", "34", "36", "68", "52", "04", "20", "02", "70", "64"];
const DAK_NONG: usize = 0;
const FIRST_YEAR: i32 = 1900;
/// Years of birth 1900–2099: what citizen IDs can say with the century digits 0–3.
const YEARS: usize = 200;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ethnicity {
    Kinh,
    /// Tày, Nùng, Dao families who came from the northern mountains (Cao Bằng, Lạng Sơn,
    /// Hà Giang): Vietnamese-style names with their own family names.
    Northern,
    EDe,
    MNong,
    /// K'Ho and Mạ.
    KHo,
}

const ETHNICITIES: &[(Ethnicity, u32)] = &[
    (Ethnicity::Kinh, 65),
    (Ethnicity::Northern, 8),
    (Ethnicity::MNong, 13),
    (Ethnicity::EDe, 10),
    (Ethnicity::KHo, 4),
];

/// Where the household's adults were born, as indices into [`PROVINCES`].
fn origins(ethnicity: Ethnicity) -> &'static [(usize, u32)] {
    match ethnicity {
        // 067, 066, 040, 038, 042, 034, 036, 068, 052
        Ethnicity::Kinh => &[(0, 700), (1, 80), (2, 50), (3, 40), (4, 30), (5, 30), (6, 25), (7, 20), (8, 25)],
        // 004, 020, 002, 067
        Ethnicity::Northern => &[(9, 40), (10, 30), (11, 15), (0, 15)],
        Ethnicity::EDe => &[(0, 85), (1, 15)],
        // 067, 066, 070
        Ethnicity::MNong => &[(0, 92), (1, 4), (12, 4)],
        // 067, 068
        Ethnicity::KHo => &[(0, 70), (7, 30)],
    }
}

const CATEGORIES: &[(proto::Category, u32)] = &[
    (proto::Category::Poor, 480),
    (proto::Category::NearPoor, 400),
    (proto::Category::SocialPolicy, 60),
    (proto::Category::MeritoriousService, 30),
    (proto::Category::Other, 30),
];

/// Members per household: mean 3.61.
const SIZES: &[(usize, u32)] = &[(1, 9), (2, 16), (3, 23), (4, 25), (5, 15), (6, 8), (7, 4)];

#[derive(Debug, Clone, Copy)]
struct Person {
    relationship: proto::Relationship,
    female: bool,
    year: i32,
    /// Province of birth, an index into [`PROVINCES`].
    province: usize,
}

const NOBODY: Person = Person { relationship: proto::Relationship::Unspecified, female: false, year: 0, province: 0 };

/// What a household is, before any text: a pure function of (seed, index), cheap enough to
/// compute for skipped households.
#[derive(Debug, Clone)]
struct Plan {
    commune: usize,
    category: proto::Category,
    flags: proto::HouseholdFlags,
    ethnicity: Ethnicity,
    people: [Person; MAX_MEMBERS],
    len: usize,
}

impl Plan {
    fn new(key: u64, index: u64, communes: usize) -> Self {
        let mut rng = Rng::household(key, index, PLAN_STREAM);
        let commune = rng.below(communes as u64) as usize;
        let category = rng.weighted(CATEGORIES);
        let (meritorious, social) = (rng.chance(10), rng.chance(21));
        let flags = proto::HouseholdFlags {
            // The category implies the flag; a few poor families are such families too.
            meritorious_service_family: category == proto::Category::MeritoriousService || meritorious,
            social_policy_family: category == proto::Category::SocialPolicy || social,
            earlier_programme_device: rng.chance(100),
            wants_device: rng.chance(600),
        };
        let ethnicity = rng.weighted(ETHNICITIES);
        let origin = rng.weighted(origins(ethnicity));
        let size = rng.weighted(SIZES);

        let mut plan = Plan { commune, category, flags, ethnicity, people: [NOBODY; MAX_MEMBERS], len: 0 };
        // The head: old people often live alone; large households have older heads.
        let head_female = rng.chance(if size == 1 { 550 } else { 220 });
        let head_year = match size {
            1 => 1940 + rng.range(0, 20) + rng.range(0, 20),
            5.. => 1940 + rng.range(0, 25) + rng.range(0, 25),
            _ => 1940 + rng.range(0, 31) + rng.range(0, 32),
        };
        plan.push(proto::Relationship::Head, head_female, head_year, origin);

        let mut slots = size - 1;
        let mut spouse_year = None;
        if slots > 0 && rng.chance(850) {
            // The husband is usually a few years older.
            let gap = rng.range(-2, 8);
            let year = if head_female { head_year - gap } else { head_year + gap }.clamp(1926, 2006);
            let province = if rng.chance(750) { origin } else { DAK_NONG };
            plan.push(proto::Relationship::Spouse, !head_female, year, province);
            spouse_year = Some(year);
            slots -= 1;
        }
        if slots > 0 && head_year >= 1965 && rng.chance(150) {
            let year = (head_year - rng.range(20, 36)).max(1926);
            let female = rng.chance(650);
            plan.push(proto::Relationship::Parent, female, year, origin);
            slots -= 1;
        }
        if slots == 0 {
            return plan;
        }

        // Children are born when both parents are adults and the mother is under 43.
        let youngest_parent = spouse_year.map_or(head_year, |s| s.max(head_year));
        let mother = match spouse_year {
            _ if head_female => head_year,
            Some(year) => year,
            None => head_year + 3,
        };
        let lo = youngest_parent + 18;
        let hi = (mother + 42).min(CURRENT_YEAR).max(lo);
        // Old heads often live with a married child and the child's children.
        let mut grandchildren = if slots >= 2 && head_year <= 1975 && rng.chance(500) {
            (rng.range(1, 2) as usize).min(slots - 1)
        } else {
            0
        };
        let mut years = [0i32; MAX_MEMBERS];
        let mut children = slots - grandchildren;
        for year in &mut years[..children] {
            *year = rng.range(lo, hi);
        }
        years[..children].sort_unstable();
        let oldest = years[0];
        if oldest + 18 > CURRENT_YEAR {
            // The children are too young to have children: more children instead.
            for year in &mut years[children..slots] {
                *year = rng.range(lo, hi);
            }
            (children, grandchildren) = (slots, 0);
            years[..slots].sort_unstable();
        }
        for year in &mut years[children..slots] {
            *year = rng.range(oldest + 18, (oldest + 42).min(CURRENT_YEAR));
        }
        years[children..slots].sort_unstable();
        debug_assert_eq!(children + grandchildren, slots);
        for (i, &year) in years[..slots].iter().enumerate() {
            let relationship = if i < children { proto::Relationship::Child } else { proto::Relationship::Grandchild };
            let female = rng.chance(490);
            let province = if relationship == proto::Relationship::Grandchild || origin == DAK_NONG || rng.chance(800) {
                DAK_NONG
            } else {
                origin
            };
            plan.push(relationship, female, year, province);
        }
        plan
    }

    fn push(&mut self, relationship: proto::Relationship, female: bool, year: i32, province: usize) {
        self.people[self.len] = Person { relationship, female, year, province };
        self.len += 1;
    }

    fn people(&self) -> &[Person] {
        &self.people[..self.len]
    }
}

/// `0PP` + sex and century + 2 digits of the year + the serial.
fn citizen_id(province: usize, person: &Person, serial: u32) -> String {
    let century = if person.year >= 2000 { 2 } else { 0 };
    let mut id = String::with_capacity(12);
    id.push('0');
    id.push_str(PROVINCES[province]);
    push_number(&mut id, century + u64::from(person.female), 1);
    push_number(&mut id, (person.year % 100) as u64, 2);
    push_number(&mut id, u64::from(serial), 6);
    id
}

/// Appends `n` in decimal, with leading zeros to `width` digits (at most 20).
fn push_number(s: &mut String, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[start.min(digits.len() - width)..] {
        s.push(char::from(d));
    }
}

fn days_in_month(year: i32, month: i32) -> i32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// ---------------------------------------------------------------------------------------
// Names and addresses (all literals in NFC; a test checks)

/// Kinh family names, weighted (per mille).
const KINH_FAMILY: &[(&str, u32)] = &[
    ("Nguyễn", 380),
    ("Trần", 110),
    ("Lê", 95),
    ("Phạm", 65),
    ("Hoàng", 45),
    ("Huỳnh", 20),
    ("Phan", 45),
    ("Vũ", 35),
    ("Võ", 35),
    ("Đặng", 20),
    ("Bùi", 20),
    ("Đỗ", 18),
    ("Hồ", 15),
    ("Ngô", 15),
    ("Dương", 12),
    ("Lý", 5),
    ("Đinh", 12),
    ("Trương", 12),
    ("Đoàn", 10),
    ("Mai", 6),
    ("Cao", 6),
    ("Lâm", 5),
    ("Tạ", 4),
    ("Lương", 5),
];

/// Tày, Nùng and Dao family names.
const NORTHERN_FAMILY: &[(&str, u32)] = &[
    ("Nông", 25),
    ("Hoàng", 20),
    ("Lương", 12),
    ("Lộc", 10),
    ("Triệu", 10),
    ("Ma", 6),
    ("Đàm", 6),
    ("Hà", 6),
    ("Lò", 5),
];

const MALE_MIDDLE: &[(&str, u32)] = &[
    ("Văn", 450),
    ("Hữu", 80),
    ("Đức", 80),
    ("Minh", 80),
    ("Thanh", 60),
    ("Quang", 60),
    ("Đình", 60),
    ("Công", 50),
    ("Xuân", 40),
    ("Ngọc", 40),
];

const FEMALE_MIDDLE: &[(&str, u32)] =
    &[("Thị", 750), ("Ngọc", 60), ("Thanh", 50), ("Thu", 40), ("Kim", 40), ("Minh", 30), ("Mỹ", 30)];

const MALE_GIVEN: &[&str] = &[
    "An", "Bình", "Cường", "Dũng", "Hùng", "Nam", "Quân", "Tuấn", "Hải", "Long", "Phúc", "Sơn", "Thắng", "Trung",
    "Việt", "Khoa", "Hiếu", "Đạt", "Tài", "Lộc", "Minh", "Thành", "Huy", "Kiên", "Toàn", "Vinh", "Hưng", "Tâm",
    "Khánh", "Phong",
];

const FEMALE_GIVEN: &[&str] = &[
    "Hà", "Hạnh", "Hoa", "Lan", "Linh", "Mai", "Phương", "Thảo", "Trang", "Yến", "Hương", "Nhung", "Hằng", "Thu", "Vy",
    "Nga", "Loan", "Hiền", "Huyền", "Dung", "Oanh", "Ngân", "Quỳnh", "Tuyết", "Xuân", "Liên", "Nhàn", "Chi", "My",
    "Ánh",
];

/// Ê Đê clan names, which children take from their mother.
const EDE_CLANS: &[(&str, u32)] = &[
    ("Niê", 30),
    ("Êban", 15),
    ("Mlô", 12),
    ("Byă", 10),
    ("Buôn Yă", 8),
    ("Hđơk", 8),
    ("Adrơng", 7),
    ("Ayŭn", 5),
    ("Kbuôr", 5),
];
const EDE_MALE: &[&str] = &["Bih", "Blô", "Ngông", "Jút", "Ơn", "Khuê", "Hlin", "Wơn", "Thuột", "Kông", "Nuê", "Dhăm"];
const EDE_FEMALE: &[&str] = &["Hen", "Ngun", "Bia", "Zơ", "Juê", "Lanh", "Mai", "Hiên", "Nhi", "Ruê", "Yơn", "Duyên"];

const MNONG_MALE: &[&str] =
    &["Kré", "Xiêng", "Bré", "Lơi", "Khơi", "Sơn", "Ong", "Đăm", "Prông", "Dũng", "Hùng", "Bình"];
const MNONG_FEMALE: &[&str] =
    &["Hoa", "Lan", "Nhung", "Bích", "Thanh", "Hương", "Mai", "Hạnh", "Lay", "Rin", "Sen", "Nam"];

const KHO_MALE: &[&str] = &["Brơi", "Sơn", "Bình", "Tiếp", "Plin", "Ha", "Kơ", "Dũng"];
const KHO_FEMALE: &[&str] = &["Huyền", "Hoa", "Hồng", "Thu", "Liên", "Nai", "Bông", "Duyên"];

/// Bon and buôn (villages) of the Central Highlands peoples.
const BONS: &[&str] = &[
    "Bon Bu Prăng",
    "Bon Bu Dăr",
    "Bon Ja Lú",
    "Bon Sar Pa",
    "Bon Bu Koh",
    "Bon N'Jriêng",
    "Bon Bu Sop",
    "Bon Ja Ráh",
    "Bon Phi Mur",
    "Buôn Buôr",
    "Buôn Nui",
    "Buôn Đăk Rla",
];

/// The family (or clan) names of a household's people.
struct Names {
    head: &'static str,
    spouse: &'static str,
    /// Children's: the father's family name (Kinh), the mother's clan (Ê Đê).
    children: &'static str,
}

impl Names {
    fn draw(rng: &mut Rng, plan: &Plan) -> Self {
        let table = match plan.ethnicity {
            Ethnicity::Kinh => KINH_FAMILY,
            Ethnicity::Northern => NORTHERN_FAMILY,
            Ethnicity::EDe => EDE_CLANS,
            Ethnicity::MNong | Ethnicity::KHo => return Names { head: "", spouse: "", children: "" },
        };
        let head = rng.weighted(table);
        let spouse = rng.weighted(table);
        let people = plan.people();
        let head_female = people[0].female;
        let has_spouse = people.get(1).is_some_and(|p| p.relationship == proto::Relationship::Spouse);
        let children = match (plan.ethnicity, has_spouse) {
            // Ê Đê are matrilineal.
            (Ethnicity::EDe, _) if head_female => head,
            (Ethnicity::EDe, true) => spouse,
            (Ethnicity::EDe, false) => rng.weighted(table),
            // Others take the father's name; a mother alone gives hers.
            (_, true) if head_female => spouse,
            _ => head,
        };
        Names { head, spouse, children }
    }

    fn lineage(&self, rng: &mut Rng, ethnicity: Ethnicity, person: &Person) -> &'static str {
        let table = match ethnicity {
            Ethnicity::Kinh => KINH_FAMILY,
            Ethnicity::Northern => NORTHERN_FAMILY,
            Ethnicity::EDe => EDE_CLANS,
            Ethnicity::MNong | Ethnicity::KHo => return "",
        };
        match person.relationship {
            proto::Relationship::Head => self.head,
            proto::Relationship::Spouse => self.spouse,
            proto::Relationship::Child => self.children,
            proto::Relationship::Grandchild if rng.chance(650) => self.children,
            // The head's father (Kinh) or mother (Ê Đê) passed the name on.
            proto::Relationship::Parent if person.female == (ethnicity == Ethnicity::EDe) => self.head,
            _ => rng.weighted(table),
        }
    }

    fn full_name(&self, rng: &mut Rng, ethnicity: Ethnicity, person: &Person) -> String {
        let lineage = self.lineage(rng, ethnicity, person);
        let mut name = String::with_capacity(32);
        let female = person.female;
        match ethnicity {
            Ethnicity::Kinh | Ethnicity::Northern => {
                let (middle, given) = if female { (FEMALE_MIDDLE, FEMALE_GIVEN) } else { (MALE_MIDDLE, MALE_GIVEN) };
                for part in [lineage, " ", rng.weighted(middle), " ", rng.pick(given)] {
                    name.push_str(part);
                }
            }
            Ethnicity::EDe => {
                let (prefix, given) = if female { ("H'", EDE_FEMALE) } else { ("Y ", EDE_MALE) };
                for part in [prefix, rng.pick(given), " ", lineage] {
                    name.push_str(part);
                }
            }
            Ethnicity::MNong => {
                let (prefix, given) = match (female, rng.chance(650)) {
                    (false, true) => ("Điểu ", MNONG_MALE),
                    (false, false) => ("Y ", MNONG_MALE),
                    (true, true) => ("Thị ", MNONG_FEMALE),
                    (true, false) => ("H'", MNONG_FEMALE),
                };
                name.push_str(prefix);
                name.push_str(rng.pick(given));
            }
            Ethnicity::KHo => {
                let (prefix, given) = if female { ("Ka ", KHO_FEMALE) } else { ("K'", KHO_MALE) };
                name.push_str(prefix);
                name.push_str(rng.pick(given));
            }
        }
        name
    }
}

fn numbered(prefix: &str, n: i32) -> String {
    let mut s = String::with_capacity(prefix.len() + 2);
    s.push_str(prefix);
    push_number(&mut s, n as u64, 1);
    s
}

fn address(rng: &mut Rng, ethnicity: Ethnicity) -> String {
    let highlands = matches!(ethnicity, Ethnicity::EDe | Ethnicity::MNong | Ethnicity::KHo);
    match rng.below(100) {
        0..15 => String::new(),
        15..60 if highlands => rng.pick(BONS).to_owned(),
        15..85 => numbered("Thôn ", rng.range(1, 16)),
        _ => numbered("Tổ dân phố ", rng.range(1, 9)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use time::macros::date;
    use unicode_normalization::UnicodeNormalization;

    use super::*;
    use telesub_server::domain::{
        household::{
            BatchKind, Category, CertificateInput, CheckContext, DataInput, HouseholdFlags, MemberInput, RecordInput,
            Relationship, check_record,
        },
        units::UnitTable,
    };

    fn data(record: &proto::HouseholdRecord) -> &proto::HouseholdData {
        match &record.change {
            Some(household_record::Change::Upsert(data)) => data,
            other => panic!("{}: not an upsert: {other:?}", record.household_code),
        }
    }

    /// The proto record as the hub's checks take it (the transport has the real conversion).
    fn input(record: &proto::HouseholdRecord) -> RecordInput {
        let d = data(record);
        let category = match proto::Category::try_from(d.category).unwrap() {
            proto::Category::Poor => Some(Category::Poor),
            proto::Category::NearPoor => Some(Category::NearPoor),
            proto::Category::SocialPolicy => Some(Category::SocialPolicy),
            proto::Category::MeritoriousService => Some(Category::MeritoriousService),
            proto::Category::Other => Some(Category::Other),
            proto::Category::Unspecified => None,
        };
        let relationship = |r: i32| match proto::Relationship::try_from(r).unwrap() {
            proto::Relationship::Head => Some(Relationship::Head),
            proto::Relationship::Spouse => Some(Relationship::Spouse),
            proto::Relationship::Child => Some(Relationship::Child),
            proto::Relationship::Parent => Some(Relationship::Parent),
            proto::Relationship::Grandchild => Some(Relationship::Grandchild),
            proto::Relationship::Grandparent => Some(Relationship::Grandparent),
            proto::Relationship::Sibling => Some(Relationship::Sibling),
            proto::Relationship::Other => Some(Relationship::Other),
            proto::Relationship::Unspecified => None,
        };
        let flags = d.flags.unwrap_or_default();
        RecordInput {
            household_code: record.household_code.clone(),
            effective_date: record.effective_date.clone(),
            upsert: Some(DataInput {
                category,
                head_name: d.head_name.clone(),
                commune_code: d.commune_code.clone(),
                address: d.address.clone(),
                certificate: d.certificate.as_ref().map(|c| CertificateInput {
                    number: c.number.clone(),
                    issued_on: c.issued_on.clone(),
                    issuing_unit: c.issuing_unit_code.clone(),
                }),
                flags: HouseholdFlags {
                    earlier_programme_device: flags.earlier_programme_device,
                    wants_device: flags.wants_device,
                    meritorious_service_family: flags.meritorious_service_family,
                    social_policy_family: flags.social_policy_family,
                },
                members: d
                    .members
                    .iter()
                    .map(|m| MemberInput {
                        citizen_id: m.citizen_id.clone(),
                        full_name: m.full_name.clone(),
                        relationship: relationship(m.relationship),
                        birth_year: m.birth_year,
                    })
                    .collect(),
            }),
            removal: None,
        }
    }

    fn rel(m: &proto::HouseholdMember) -> proto::Relationship {
        proto::Relationship::try_from(m.relationship).unwrap()
    }

    #[test]
    fn the_same_seed_gives_the_same_households() {
        let a: Vec<_> = HouseholdGenerator::reference(7).take(2_000).collect();
        let b: Vec<_> = HouseholdGenerator::reference(7).take(2_000).collect();
        assert_eq!(a, b);
        let c: Vec<_> = HouseholdGenerator::reference(8).take(2_000).collect();
        let same = a.iter().zip(&c).filter(|(a, c)| data(a) == data(c)).count();
        assert_eq!(same, 0, "different seeds give different households");
        // A shorter run is a prefix of a longer one.
        let short: Vec<_> = HouseholdGenerator::reference(7).take(500).collect();
        assert_eq!(short[..], a[..500]);
        // Skipping gives what `next` would have given.
        assert_eq!(HouseholdGenerator::reference(7).nth(1_234).unwrap(), a[1_234]);
        let skipped: Vec<_> = HouseholdGenerator::reference(7).skip(1_000).take(1_000).collect();
        assert_eq!(skipped[..], a[1_000..]);
    }

    /// The records' fields, hashed: pins the output across machines and releases (changing
    /// the generator on purpose changes it; update the constant then).
    fn fingerprint(records: impl Iterator<Item = proto::HouseholdRecord>) -> String {
        let mut text = String::new();
        for r in records {
            let d = data(&r);
            let f = d.flags.unwrap();
            let c = d.certificate.clone().unwrap_or_default();
            text += &format!(
                "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}\n",
                r.household_code,
                d.category,
                d.head_name,
                d.commune_code,
                d.address,
                c.number,
                c.issued_on,
                c.issuing_unit_code,
                f.earlier_programme_device,
                f.wants_device,
                f.meritorious_service_family,
                f.social_policy_family,
                d.members.len()
            );
            for m in &d.members {
                text += &format!("  {}|{}|{}|{}\n", m.citizen_id, m.full_name, m.relationship, m.birth_year);
            }
        }
        telesub_server::hex(ring::digest::digest(&ring::digest::SHA256, text.as_bytes()).as_ref())
    }

    #[test]
    fn a_fixed_seed_gives_fixed_output() {
        let first = HouseholdGenerator::reference(42).next().unwrap();
        let d = data(&first);
        assert_eq!(first.household_code, "HH-24700-0000000");
        assert_eq!((d.head_name.as_str(), d.members[0].citizen_id.as_str()), ("Nguyễn Văn Long", "067061518404"));
        assert_eq!(
            fingerprint(HouseholdGenerator::reference(42).take(1_000)),
            "806df5dfa903f4d22018b98e29ca9dc381dbd23731efbb6f63164300e941b095"
        );
    }

    #[test]
    fn codes_and_citizen_ids_are_unique_and_match_the_birth_years() {
        let mut codes = HashSet::new();
        let mut ids: HashSet<u64> = HashSet::new();
        for record in HouseholdGenerator::reference(1).take(200_000) {
            let d = data(&record);
            assert!(codes.insert(record.household_code.clone()), "{} twice", record.household_code);
            assert!(record.household_code.starts_with(&format!("HH-{}-", d.commune_code)));
            for m in &d.members {
                let id = &m.citizen_id;
                assert_eq!(id.len(), 12, "{id}");
                assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");
                assert!(ids.insert(id.parse().unwrap()), "{id} twice");
                assert!(id.starts_with('0') && PROVINCES.contains(&&id[1..3]), "{id}");
                let b = id.as_bytes();
                let century = if m.birth_year >= 2000 { 2 } else { 0 };
                assert!(matches!(b[3] - b'0', c if c == century || c == century + 1), "{id} {}", m.birth_year);
                assert_eq!(id[4..6].parse::<i32>().unwrap(), m.birth_year % 100, "{id} {}", m.birth_year);
            }
        }
        assert_eq!(codes.len(), 200_000);
        assert!(ids.len() > 650_000, "{}", ids.len());
    }

    #[test]
    fn households_are_plausible() {
        let mut sizes = [0usize; MAX_MEMBERS + 1];
        let (mut members, mut spouses, mut pairs, mut parents, mut grandchildren) = (0, 0, 0, 0, 0);
        let (mut nguyen, mut kinh_style, mut highland) = (0, 0, 0);
        let mut provinces = std::collections::BTreeMap::new();
        for record in HouseholdGenerator::reference(3).take(50_000) {
            let d = data(&record);
            let m = &d.members;
            assert!((1..=MAX_MEMBERS).contains(&m.len()));
            sizes[m.len()] += 1;
            members += m.len();
            assert_eq!(rel(&m[0]), proto::Relationship::Head);
            assert_eq!(m.iter().filter(|m| rel(m) == proto::Relationship::Head).count(), 1);
            assert_eq!(d.head_name, m[0].full_name);
            let head = &m[0];
            assert!((1940..=2003).contains(&head.birth_year), "{}", head.birth_year);
            let spouse = m.iter().find(|m| rel(m) == proto::Relationship::Spouse);
            if m.len() >= 2 {
                pairs += 1;
                spouses += usize::from(spouse.is_some());
            }
            let youngest_parent = spouse.map_or(head.birth_year, |s| s.birth_year.max(head.birth_year));
            let mut oldest_child = i32::MAX;
            for x in m {
                assert!((1900..=CURRENT_YEAR).contains(&x.birth_year));
                *provinces.entry(x.citizen_id[..3].to_owned()).or_insert(0usize) += 1;
                match rel(x) {
                    proto::Relationship::Child => {
                        assert!(x.birth_year >= youngest_parent + 18, "{record:?}");
                        oldest_child = oldest_child.min(x.birth_year);
                    }
                    proto::Relationship::Parent => {
                        parents += 1;
                        assert!(x.birth_year <= head.birth_year - 20, "{record:?}");
                    }
                    proto::Relationship::Grandchild => grandchildren += 1,
                    proto::Relationship::Head | proto::Relationship::Spouse => {}
                    other => panic!("unexpected relationship {other:?}"),
                }
            }
            for x in m.iter().filter(|x| rel(x) == proto::Relationship::Grandchild) {
                assert!(x.birth_year >= oldest_child + 18, "{record:?}");
            }
            let name = &head.full_name;
            if name.starts_with("Nguyễn ") {
                nguyen += 1;
            }
            if name.split(' ').count() >= 3 && !name.starts_with("Y ") {
                kinh_style += 1;
            }
            if name.contains('\'') || name.starts_with("Điểu ") || name.starts_with("Y ") {
                highland += 1;
            }
            if let Some(c) = &d.certificate {
                assert_eq!(c.issuing_unit_code, d.commune_code);
                assert!(c.number.ends_with("/GCN-HN.HCN"));
                assert!(("2022-01-01".."2026-01-01").contains(&c.issued_on.as_str()), "{}", c.issued_on);
            }
        }
        let mean = members as f64 / 50_000.0;
        assert!((3.45..3.75).contains(&mean), "mean household size {mean}");
        assert!(sizes[1] > 0 && sizes[7] > 0);
        assert!(spouses * 100 / pairs >= 80, "{spouses} of {pairs}");
        assert!(parents > 500 && grandchildren > 500, "{parents} parents, {grandchildren} grandchildren");
        assert!((15..35).contains(&(nguyen * 100 / 50_000)), "Nguyễn {nguyen}");
        assert!(kinh_style > 30_000 && highland > 7_000, "{kinh_style} {highland}");
        let dak_nong = provinces["067"] * 100 / members;
        assert!((75..95).contains(&dak_nong), "born in Đắk Nông: {dak_nong}%");
        assert!(provinces.contains_key("040") && provinces.contains_key("038") && provinces.contains_key("066"));
    }

    #[test]
    fn the_mix_is_that_of_a_poor_province() {
        const N: usize = 100_000;
        let mut categories = [0usize; 6];
        let (mut meritorious, mut social, mut earlier, mut wants) = (0, 0, 0, 0);
        let (mut certificates, mut addresses) = (0, 0);
        for record in HouseholdGenerator::reference(11).take(N) {
            let d = data(&record);
            categories[d.category as usize] += 1;
            let f = d.flags.unwrap();
            meritorious += usize::from(f.meritorious_service_family);
            social += usize::from(f.social_policy_family);
            earlier += usize::from(f.earlier_programme_device);
            wants += usize::from(f.wants_device);
            certificates += usize::from(d.certificate.is_some());
            addresses += usize::from(!d.address.is_empty());
            if d.category == proto::Category::MeritoriousService as i32 {
                assert!(f.meritorious_service_family);
            }
        }
        let pct = |n: usize| n as f64 * 100.0 / N as f64;
        let near = |n: usize, want: f64| (pct(n) - want).abs() < 1.0;
        assert_eq!(categories[0], 0);
        assert!(near(categories[1], 48.0), "POOR {}", pct(categories[1]));
        assert!(near(categories[2], 40.0), "NEAR_POOR {}", pct(categories[2]));
        assert!(near(categories[3], 6.0), "SOCIAL_POLICY {}", pct(categories[3]));
        assert!(near(categories[4], 3.0), "MERITORIOUS_SERVICE {}", pct(categories[4]));
        assert!(near(categories[5], 3.0), "OTHER {}", pct(categories[5]));
        assert!(near(meritorious, 4.0), "meritorious {}", pct(meritorious));
        assert!(near(social, 8.0), "social {}", pct(social));
        assert!(near(earlier, 10.0), "earlier {}", pct(earlier));
        assert!(near(wants, 60.0), "wants {}", pct(wants));
        assert!(pct(certificates) > 85.0 && pct(addresses) > 75.0);
    }

    #[test]
    fn names_are_nfc_and_use_only_name_characters() {
        let tables = [KINH_FAMILY, NORTHERN_FAMILY, MALE_MIDDLE, FEMALE_MIDDLE, EDE_CLANS];
        let lists =
            [MALE_GIVEN, FEMALE_GIVEN, EDE_MALE, EDE_FEMALE, MNONG_MALE, MNONG_FEMALE, KHO_MALE, KHO_FEMALE, BONS];
        let words =
            tables.iter().flat_map(|t| t.iter().map(|(w, _)| *w)).chain(lists.iter().flat_map(|l| l.iter().copied()));
        for word in words {
            assert_eq!(word.nfc().collect::<String>(), word, "{word:?} is not NFC");
        }
        let mut seen = HashSet::new();
        for record in HouseholdGenerator::reference(5).take(20_000) {
            let d = data(&record);
            assert_eq!(d.address.nfc().collect::<String>(), d.address);
            for m in &d.members {
                let name = &m.full_name;
                assert_eq!(name.nfc().collect::<String>(), *name, "{name:?} is not NFC");
                assert!(name.chars().all(|c| c.is_alphabetic() || matches!(c, ' ' | '\'' | '-' | '.')), "{name:?}");
                assert_eq!(name.trim(), name);
                assert!(!name.contains("  "), "{name:?}");
                seen.insert(name.clone());
            }
        }
        assert!(seen.len() > 5_000, "only {} different names", seen.len());
    }

    #[test]
    fn records_pass_the_hubs_checks() {
        let units = UnitTable::new(reference_units().unwrap());
        let cx = CheckContext {
            units: &units,
            today: date!(2026 - 11 - 25),
            batch_effective: date!(2026 - 11 - 01),
            kind: BatchKind::Snapshot,
        };
        for (i, record) in HouseholdGenerator::reference(9).take(20_000).enumerate() {
            if let Err(violations) = check_record(i, &input(&record), &cx) {
                panic!("{record:?}: {violations:?}");
            }
        }
    }

    #[test]
    fn communes_are_those_given() {
        let communes = vec!["24611".to_owned(), "24612".to_owned()];
        let mut generator = HouseholdGenerator::new(1, communes.clone());
        assert_eq!(HouseholdGenerator::reference(1).communes().len(), 71);
        let mut seen = HashSet::new();
        for record in generator.by_ref().take(1_000) {
            seen.insert(data(&record).commune_code.clone());
        }
        assert_eq!(seen, communes.into_iter().collect());
        assert_eq!(generator.position(), 1_000);
    }

    #[test]
    fn the_serial_scramble_is_a_bijection() {
        let mut seen = vec![false; CELL_CAPACITY as usize];
        for n in 0..CELL_CAPACITY {
            let s = feistel(12345, n) as usize;
            assert!(!seen[s], "{n}");
            seen[s] = true;
        }
    }

    #[test]
    fn a_full_cell_moves_people_to_the_next_province() {
        let mut generator = HouseholdGenerator::reference(1);
        let person = Person { relationship: proto::Relationship::Head, female: true, year: 1980, province: DAK_NONG };
        let cell = YEARS + 80; // Đắk Nông, female, 1980
        generator.cells[cell] = CELL_CAPACITY - 1;
        assert_eq!(generator.place(&person).0, DAK_NONG);
        assert_eq!(generator.place(&person).0, 1);
        assert_eq!(generator.cells[cell], CELL_CAPACITY);
    }

    /// `cargo test --release -p telesub --lib generator::tests::two_million -- --ignored`
    #[test]
    #[ignore = "takes a while in debug builds"]
    fn two_million_households_never_share_a_citizen_id() {
        let mut ids: Vec<u64> = Vec::with_capacity(7_500_000);
        for record in HouseholdGenerator::reference(2).take(2_000_000) {
            ids.extend(data(&record).members.iter().map(|m| m.citizen_id.parse::<u64>().unwrap()));
        }
        let all = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all);
    }
}
