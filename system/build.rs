fn main() -> Result<(), Box<dyn std::error::Error>> {
    // protoc ships inside the protoc-bin-vendored crate: no system package needed.
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    tonic_build::configure()
        // Maps (the Tartu vector clocks) as BTreeMaps: no hash order leaks
        // into the simulation.
        .btree_map(["."])
        .compile_protos(
            &[
                "proto/bookstore.proto",
                "proto/shop.proto",
                "proto/tartu.proto",
                "proto/etcd.proto",
                "proto/pad.proto",
            ],
            &["proto"],
        )?;
    println!("cargo:rerun-if-changed=proto/bookstore.proto");
    println!("cargo:rerun-if-changed=proto/shop.proto");
    println!("cargo:rerun-if-changed=proto/tartu.proto");
    println!("cargo:rerun-if-changed=proto/etcd.proto");
    println!("cargo:rerun-if-changed=proto/pad.proto");
    Ok(())
}
