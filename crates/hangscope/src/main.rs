fn main() {
    println!("hangscope skeleton");
}
