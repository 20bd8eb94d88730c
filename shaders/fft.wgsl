// One Stockham autosort stage of a batched complex FFT (radix 4 or 2), global memory.
//
// A transform of n points runs log4(n) radix-4 stages (plus one radix-2 stage when
// log2(n) is odd), ping-ponging between `src` and `dst`. Signal b of the batch occupies
// elements [b*n, (b+1)*n). Twiddles come from a table computed in float64 on the host
// (tw[i] = exp(-2*pi*i*I / (n*tw_stride))): WGSL's sin/cos are only accurate to about
// 2^-11 on some GPUs, which would cost the -90 dB error budget.
// Threads: batch * n / radix; dispatched 2-D (x ≤ 65535) and flattened here.

struct Stage {
    n: u32,
    ns: u32,         // product of the radices of the previous stages
    radix: u32,      // 4 or 2
    inverse: u32,    // 1: conjugate twiddles and the radix-4 rotation
    total: u32,      // batch * n / radix
    tw_stride: u32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> st: Stage;
@group(0) @binding(1) var<storage, read> src: array<vec2<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec2<f32>>;
@group(0) @binding(3) var<storage, read> tw: array<vec2<f32>>;

fn cmul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(a.x * b.x - a.y * b.y, a.x * b.y + a.y * b.x);
}

fn twiddle(i: u32) -> vec2<f32> {
    let w = tw[i];
    if (st.inverse == 1u) {
        return vec2<f32>(w.x, -w.y);
    }
    return w;
}

@compute @workgroup_size(64)
fn fft_stage(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = (wid.y * nwg.x + wid.x) * 64u + lid;
    if (t >= st.total) {
        return;
    }
    let q = st.n / st.radix;
    let b = t / q;
    let j = t - b * q;
    let base = b * st.n;
    let k = j % st.ns;
    let step = (st.n / (st.ns * st.radix)) * st.tw_stride;
    let d = base + (j / st.ns) * st.ns * st.radix + k;
    if (st.radix == 4u) {
        let v0 = src[base + j];
        let v1 = cmul(src[base + j + q], twiddle(k * step));
        let v2 = cmul(src[base + j + 2u * q], twiddle(2u * k * step));
        let v3 = cmul(src[base + j + 3u * q], twiddle(3u * k * step));
        let a = v0 + v2;
        let bb = v0 - v2;
        let c = v1 + v3;
        let e = v1 - v3;
        // forward: -i*e; inverse: +i*e
        var r = vec2<f32>(e.y, -e.x);
        if (st.inverse == 1u) {
            r = vec2<f32>(-e.y, e.x);
        }
        dst[d] = a + c;
        dst[d + st.ns] = bb + r;
        dst[d + 2u * st.ns] = a - c;
        dst[d + 3u * st.ns] = bb - r;
    } else {
        let v0 = src[base + j];
        let v1 = cmul(src[base + j + q], twiddle(k * step));
        dst[d] = v0 + v1;
        dst[d + st.ns] = v0 - v1;
    }
}
