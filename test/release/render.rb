# Renders a BOSH job's templates the way BOSH does, without the bosh CLI:
#
#   ruby render.rb <job_dir> <input.json> <out_dir>
#
# input.json: {"properties": {...job properties, nested...}, "spec": {...instance spec, optional}}.
# Like the Director and `bosh create-env`, only properties declared in the job's spec are visible,
# each one either as given or as its spec default; templates see p(), if_p() and spec, ERB runs with
# trim mode "-", and files under bin/ end up executable. Exits 1 with BOSH's style of message when
# a template raises.
require 'erb'
require 'fileutils'
require 'json'
require 'ostruct'
require 'yaml'

class JobRenderContext
  # What a template reads through `spec` (a subset of the Director's instance spec).
  DEFAULT_SPEC = {
    'deployment' => 'bosh',
    'name' => 'bosh',
    'index' => 0,
    'id' => '00000000-0000-4000-8000-000000000000',
    'az' => 'z1',
    'bootstrap' => true,
    'address' => '10.0.0.6',
    'ip' => '10.0.0.6',
    'networks' => { 'default' => { 'ip' => '10.0.0.6' } },
  }.freeze

  attr_reader :spec

  def initialize(job_spec, given_properties, instance_spec)
    @raw_properties = {}
    (job_spec['properties'] || {}).each do |name, definition|
      value = dig(given_properties, name)
      set(@raw_properties, name, value.nil? ? (definition || {})['default'] : value)
    end
    spec_hash = DEFAULT_SPEC.merge('job' => { 'name' => job_spec['name'] }).merge(instance_spec)
    spec_hash['properties'] = @raw_properties
    @spec = to_struct(spec_hash)
  end

  def get_binding
    binding
  end

  # p('a.b'), p(['a.b', 'legacy.b']), p('a.b', default): the first name that has a value wins.
  def p(*args)
    names = Array(args[0])
    names.each do |name|
      value = dig(@raw_properties, name)
      return value unless value.nil?
    end
    return args[1] if args.length == 2

    raise UnknownProperty, "Can't find property '#{names.join("', or '")}'"
  end

  # if_p('a', 'b') { |a, b| ... }.else { ... }: the block runs only when every property has a value.
  def if_p(*names)
    values = names.map { |name| dig(@raw_properties, name) }
    return ElseRuns.new(self) if values.any?(&:nil?)

    yield(*values)
    ElseSkipped.new
  end

  def if_link(_name)
    ElseRuns.new(self)
  end

  class UnknownProperty < StandardError; end

  class ElseRuns
    def initialize(context)
      @context = context
    end

    def else
      yield
    end

    def else_if_p(*names, &block)
      @context.if_p(*names, &block)
    end
  end

  class ElseSkipped
    def else; end

    def else_if_p(*_names)
      self
    end
  end

  private

  def dig(hash, dotted)
    dotted.split('.').reduce(hash) { |node, key| node.is_a?(Hash) ? node[key] : nil }
  end

  def set(hash, dotted, value)
    *parents, leaf = dotted.split('.')
    node = parents.reduce(hash) { |h, key| h[key] ||= {} }
    node[leaf] = value
  end

  def to_struct(value)
    case value
    when Hash then OpenStruct.new(value.transform_values { |v| to_struct(v) })
    when Array then value.map { |v| to_struct(v) }
    else value
    end
  end
end

job_dir, input_path, out_dir = ARGV
abort('usage: ruby render.rb <job_dir> <input.json> <out_dir>') unless out_dir

job_spec = YAML.safe_load(File.read(File.join(job_dir, 'spec')))
input = JSON.parse(File.read(input_path))
context = JobRenderContext.new(job_spec, input['properties'] || {}, input['spec'] || {})

sources = (job_spec['templates'] || {}).map { |src, dst| [File.join(job_dir, 'templates', src), dst] }
sources << [File.join(job_dir, 'monit'), 'monit']

sources.each do |src, dst|
  begin
    erb = ERB.new(File.read(src), trim_mode: '-')
    erb.filename = src
    output = erb.result(context.get_binding)
  rescue Exception => e # rubocop:disable Lint/RescueException -- BOSH reports every failure the same way
    line = e.backtrace&.find { |l| l.start_with?("#{src}:") }&.split(':')&.[](1) || 'unknown'
    warn "Error filling in template '#{File.basename(src)}' for #{job_spec['name']}/0 (line #{line}: #{e.inspect})"
    exit 1
  end
  target = File.join(out_dir, dst)
  FileUtils.mkdir_p(File.dirname(target))
  File.write(target, output)
  File.chmod(dst.start_with?('bin/') ? 0o755 : 0o644, target)
end
