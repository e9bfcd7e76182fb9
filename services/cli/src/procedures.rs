//! The demo procedures catalog (`deploy/catalog/procedures.csv`): generated, deterministic,
//! so that the shipped file can be checked against its generator.

use govpulse_core::{Block, Catalog};

/// Common procedures of a province (names as published in Vietnamese).
const PROVINCE_PROCEDURES: [&str; 24] = [
    "Đăng ký khai sinh",
    "Đăng ký kết hôn",
    "Đăng ký khai tử",
    "Cấp bản sao trích lục hộ tịch",
    "Chứng thực bản sao từ bản chính",
    "Cấp giấy phép xây dựng",
    "Cấp giấy chứng nhận quyền sử dụng đất",
    "Đăng ký thành lập doanh nghiệp",
    "Đăng ký hộ kinh doanh",
    "Đổi giấy phép lái xe",
    "Cấp phiếu lý lịch tư pháp",
    "Cấp giấy phép kinh doanh rượu",
    "Trợ cấp xã hội hằng tháng",
    "Cấp giấy phép lao động cho người nước ngoài",
    "Cấp chứng chỉ hành nghề",
    "Thẩm định thiết kế cơ sở",
    "Cấp giấy phép môi trường",
    "Cấp giấy chứng nhận cơ sở đủ điều kiện an toàn thực phẩm",
    "Công nhận trường đạt chuẩn quốc gia",
    "Cấp giấy phép hoạt động khám bệnh, chữa bệnh",
    "Cấp giấy phép tổ chức biểu diễn nghệ thuật",
    "Đăng ký biến động đất đai",
    "Cấp giấy phép khai thác nước mặt",
    "Hỗ trợ người lao động mất việc làm",
];

/// Procedures a ministry typically provides (generic names).
const MINISTRY_PROCEDURES: [&str; 12] = [
    "Cấp giấy phép",
    "Gia hạn giấy phép",
    "Cấp lại giấy phép",
    "Cấp chứng chỉ",
    "Công nhận tổ chức",
    "Đăng ký hoạt động",
    "Thẩm định hồ sơ",
    "Phê duyệt đề án",
    "Cấp giấy xác nhận",
    "Đăng ký lưu hành",
    "Cấp mã số",
    "Công bố hợp quy",
];

/// A stable 64-bit mix of a string (FNV-1a then splitmix64), so that the generated catalog
/// does not depend on any random generator's version.
pub fn stable_hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The procedures CSV for every top-level agency of `catalog`.
pub fn generate(catalog: &Catalog) -> String {
    let mut out = String::from("id,agency_id,name,provision,eligible_full_online\n");
    for block in [Block::Ministry, Block::Province] {
        let names: &[&str] = if block == Block::Province {
            &PROVINCE_PROCEDURES
        } else {
            &MINISTRY_PROCEDURES
        };
        for agency in catalog.block_members(block) {
            // Each agency provides a different share of its procedures fully online.
            let full_share = 30 + stable_hash(agency.id.as_str()) % 60;
            for (i, name) in names.iter().enumerate() {
                let id = format!("{}.p{:02}", agency.id, i + 1);
                let roll = stable_hash(&id) % 100;
                let (provision, eligible) = if roll < full_share {
                    ("full", true)
                } else if roll < full_share + (100 - full_share) * 2 / 3 {
                    ("partial", roll.is_multiple_of(2))
                } else {
                    ("info", false)
                };
                let name = if name.contains(',') {
                    format!("\"{name}\"")
                } else {
                    (*name).to_owned()
                };
                out.push_str(&format!(
                    "{id},{},{name},{provision},{eligible}\n",
                    agency.id
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_procedures_file_is_what_the_generator_makes() {
        let catalog = govpulse_runtime::catalog_files::built_in().expect("valid");
        let shipped = include_str!("../../../deploy/catalog/procedures.csv");
        assert!(
            shipped == generate(&catalog),
            "deploy/catalog/procedures.csv is stale: run `cargo run -p govpulse -- gen-procedures > deploy/catalog/procedures.csv`"
        );
    }

    #[test]
    fn hashing_is_stable() {
        assert_eq!(stable_hash("ha-noi"), stable_hash("ha-noi"));
        assert_ne!(stable_hash("ha-noi"), stable_hash("ha-nam"));
    }
}
